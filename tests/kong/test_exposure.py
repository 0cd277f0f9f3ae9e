"""The issuer's operations endpoints are not on the public site by default (issue 12,
finding 10): `kong/kong.yml` routes only its public paths, and the example nginx site
sends nothing to it."""

from __future__ import annotations

import re

import yaml

from ..harness import REPO

PRIVATE = ["/metrics", "/readyz", "/healthz", "/admin/users", "/admin/users/x/roles",
           "/admin/clients", "/admin/clients/x/credentials"]  # fmt: skip


def test_kong_routes_none_of_the_issuers_operations_paths() -> None:
    config = yaml.safe_load((REPO / "kong" / "kong.yml").read_text())
    issuer = next(s for s in config["services"] if s["name"] == "issuer")
    paths = [p for route in issuer["routes"] for p in route.get("paths", [])]
    assert paths, "the issuer's public routes are gone?"
    for private in PRIVATE:
        exposed = [p for p in paths if _matches(p, private)]
        assert not exposed, f"{private} is routed to the issuer by {exposed}"


def _matches(route_path: str, path: str) -> bool:
    """Kong 3: a plain route path is a prefix of the request path; one starting with `~`
    is a regex anchored at the start of the path (docs: "Matching paths")."""
    if route_path.startswith("~"):
        return re.match(route_path[1:], path) is not None
    return path.startswith(route_path)


def test_the_example_nginx_site_proxies_nothing_to_the_issuer() -> None:
    template = (REPO / "nginx" / "templates" / "example.conf.template").read_text()
    assert "issuer" not in template.lower() and "9180" not in template


def test_every_issuer_path_the_site_sends_to_the_gateway_has_a_route() -> None:
    """The assembled site's nginx sends the issuer's public paths to the gateway; each must
    reach the issuer there (`/link/` once did not: a 404 from the gateway)."""
    template = (REPO / "nginx" / "templates" / "stack.conf.template").read_text()
    found = re.search(r"location ~ \^/\(([^)]*)\) \{", template)
    assert found, "the issuer's location is gone?"
    config = yaml.safe_load((REPO / "kong" / "kong.yml").read_text())
    issuer = next(s for s in config["services"] if s["name"] == "issuer")
    paths = [p for route in issuer["routes"] for p in route.get("paths", [])]
    for alternative in found.group(1).split("|"):
        sample = "/" + alternative.replace("\\", "").rstrip("$")
        if sample.endswith("/"):
            sample += "x"
        assert any(_matches(p, sample) for p in paths), f"{sample} has no issuer route"
