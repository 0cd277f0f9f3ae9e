"""The ingress-nginx adapter (nginx/templates/ingress-nginx-auth.conf.template): real nginx
in front of the real verifier, asked the way ingress-nginx's controller asks an auth-url.

ingress-nginx's own template builds that subrequest (rootfs/etc/nginx/template/nginx.tmpl
in kubernetes/ingress-nginx, the `location = {{ $authPath }}` block): the client's headers
(`proxy_pass_request_headers on`), no body, and over them Host (the auth URL's host),
X-Original-URL (`$scheme://$http_host$request_uri`), X-Original-Method, X-Sent-From
("nginx-ingress-controller"), X-Real-IP, X-Forwarded-For and X-Auth-Request-Redirect
(`$request_uri`). `ingress_nginx_asks` below sends exactly those."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import httpx
import pytest

from issuer.signing import SigningKey
from stack.nginx import NGINX_DIR, Nginx
from stack.processes import free_port

from ..harness import Sessions, VerifierProcess, mint

TEMPLATE = NGINX_DIR / "templates" / "ingress-nginx-auth.conf.template"


@pytest.fixture(scope="module")
def adapter(verifier: VerifierProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    server = Nginx(
        tmp_path_factory.mktemp("ingress-auth"),
        TEMPLATE,
        {"AUTHGATE_NGINX_LISTEN": f"127.0.0.1:{port}",
         "AUTHGATE_VERIFIER_ADDR": f"127.0.0.1:{verifier.port}"},
    )  # fmt: skip
    server.start(port)
    yield f"http://127.0.0.1:{port}"
    server.stop()


def ingress_nginx_asks(
    url: str, original: str, method: str = "GET", client: Mapping[str, str] | None = None
) -> httpx.Response:
    """The auth subrequest of ingress-nginx for a client's `method original` request."""
    request_uri = "/" + original.split("://", 1)[1].partition("/")[2]
    headers = {
        **(client or {}),
        "Host": "ag-authgate-ingress-auth.apps.svc.cluster.local",
        "X-Original-URL": original,
        "X-Original-Method": method,
        "X-Sent-From": "nginx-ingress-controller",
        "X-Real-IP": "203.0.113.7",
        "X-Forwarded-For": "203.0.113.7",
        "X-Auth-Request-Redirect": request_uri,
    }
    return httpx.get(url + "/verify", headers=headers, timeout=10)


def test_a_live_session_passes_with_its_identity(
    adapter: str, sessions: Sessions, signing_key: SigningKey
) -> None:
    sid = sessions.create("dana", roles=["editor"], email="dana@example.test", name="Dana")
    bearer = {"Authorization": f"Bearer {mint(signing_key, sid, 'dana')}"}
    answer = ingress_nginx_asks(adapter, "https://app.example.test/reports/q3?y=1", client=bearer)
    assert answer.status_code == 204, answer.text
    # What auth-response-headers copies onto the upstream request.
    assert answer.headers["x-auth-user"] == "dana"
    assert answer.headers["x-auth-email"] == "dana@example.test"
    assert answer.headers["x-auth-roles"] == "editor"
    assert answer.headers["x-auth-session"] == sid


def test_the_verifier_alone_refuses_ingress_nginx_so_the_adapter_is_needed(
    verifier: VerifierProcess, sessions: Sessions, signing_key: SigningKey
) -> None:
    """Asked directly, the verifier refuses the same live session: ingress-nginx's
    X-Auth-Request-Redirect is in authgate's namespace and reads as forged."""
    sid = sessions.create("erin")
    bearer = {"Authorization": f"Bearer {mint(signing_key, sid, 'erin')}"}
    answer = ingress_nginx_asks(verifier.url, "https://app.example.test/reports", client=bearer)
    assert answer.status_code == 403


def test_no_session_is_401_so_ingress_nginx_sends_the_browser_to_sign_in(adapter: str) -> None:
    answer = ingress_nginx_asks(adapter, "https://app.example.test/reports/q3")
    assert answer.status_code == 401


def test_the_rule_is_chosen_by_the_original_path_and_method(
    adapter: str, sessions: Sessions, signing_key: SigningKey
) -> None:
    # nginx/example-policy.yml: /public is public, /admin needs the admin role, and /api
    # writes need the api:write scope.
    assert ingress_nginx_asks(adapter, "https://app.example.test/public/x").status_code == 204
    sid = sessions.create("fay", roles=["viewer"])
    bearer = {"Authorization": f"Bearer {mint(signing_key, sid, 'fay')}"}
    assert (
        ingress_nginx_asks(adapter, "https://app.example.test/admin/", client=bearer).status_code
        == 403
    )
    assert (
        ingress_nginx_asks(adapter, "https://app.example.test/home", client=bearer).status_code
        == 204
    )
    delete = ingress_nginx_asks(adapter, "https://app.example.test/api/items/1", "DELETE", bearer)
    assert delete.status_code == 403
    # A bare origin is the path /.
    assert ingress_nginx_asks(adapter, "https://app.example.test", client=bearer).status_code == 204


def test_a_client_cannot_name_the_rule_or_the_request_judged(adapter: str) -> None:
    """The client's own headers reach the adapter; those that would choose what the
    verifier judges are set over."""
    forged = {"X-Authgate-Policy": "public", "X-Original-URI": "/public/x",
              "X-Forwarded-Host": "public.example.test", "X-Original-Host": "x"}  # fmt: skip
    answer = ingress_nginx_asks(adapter, "https://app.example.test/reports", client=forged)
    assert answer.status_code == 401


def test_an_identity_header_from_the_client_is_refused(
    adapter: str, sessions: Sessions, signing_key: SigningKey
) -> None:
    sid = sessions.create("gus")
    client = {"Authorization": f"Bearer {mint(signing_key, sid, 'gus')}",
              "X-Auth-Impersonate": "root"}  # fmt: skip
    answer = ingress_nginx_asks(adapter, "https://app.example.test/home", client=client)
    assert answer.status_code == 403


@pytest.mark.parametrize(
    "original",
    ["", "/home", "ftp://app.example.test/home", "https:///home", "https://app.example.test#x"],
)
def test_without_an_original_url_nothing_is_allowed(adapter: str, original: str) -> None:
    headers = {"X-Original-Method": "GET", "X-Sent-From": "nginx-ingress-controller"}
    if original:
        headers["X-Original-URL"] = original
    answer = httpx.get(adapter + "/verify", headers=headers, timeout=10)
    assert answer.status_code == 403


def test_unsafe_paths_are_refused(adapter: str) -> None:
    """The verifier refuses paths readers may take differently (authgate/paths.py) when
    they come through X-Original-URL too."""
    answer = ingress_nginx_asks(adapter, "https://app.example.test/public/..%2fadmin")
    assert answer.status_code == 403


def test_only_verify_is_served(adapter: str) -> None:
    assert httpx.get(adapter + "/readyz", timeout=10).status_code == 404
