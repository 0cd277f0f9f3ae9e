"""compose/compose.yml, proven as far as a machine without a Docker engine can: the
Compose Specification's schema, the variables, each service's settings as that service
loads them, the names and ports every other file uses, nginx's site, the image's commands.
compose/README.md lists what is not proven here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from authgate.config import ConfigError
from examples.members import settings as members_settings
from issuer import settings as issuer_settings
from issuer.devices import MAC_KEY_FILE
from stack import topology
from stack.nginx import NGINX_DIR, Nginx
from verifier import settings as verifier_settings

from ..harness import REPO
from .compose import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    document,
    env_example,
    environment,
    interpolate,
    mounted,
    variables_read,
)

CHECK_JSONSCHEMA = str(Path(sys.executable).parent / "check-jsonschema")
#: The services built from the repository's Dockerfile.
PYTHON_SERVICES = ("issuer", "verifier", "members")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    result = _validate(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    # The same validator refuses a file that breaks the specification.
    broken = tmp_path / "compose.yml"
    broken.write_text(
        COMPOSE_FILE.read_text().replace('    expose: ["6379"]', "    exposes: [6379]")
    )
    refused = _validate(broken)
    assert refused.returncode != 0 and "exposes" in refused.stdout + refused.stderr


def test_every_variable_is_documented_and_every_documented_one_read() -> None:
    read = variables_read(COMPOSE_FILE.read_text())
    documented = set(env_example())
    assert read - documented == set(), "read but not in .env.example"
    assert documented - read == set(), "in .env.example but never read"


def test_a_required_variable_left_out_is_named() -> None:
    example = env_example()
    del example["AUTHGATE_RABBITMQ_PASSWORD"]
    with pytest.raises(ValueError, match="AUTHGATE_RABBITMQ_PASSWORD"):
        interpolate(COMPOSE_FILE.read_text(), example)


def _prepared_secrets(doc: dict[str, Any], tmp: Path) -> None:
    """The secrets as compose/secrets/README.md says to make them."""
    for name in doc["secrets"]:
        if name == "issuer_keys":
            subprocess.run(
                [str(Path(sys.executable).parent / "authgate-issuer"), "keys", "list",
                 "--keys-dir", str(tmp / name)],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            # Complete, so it can be mounted read-only: a key and the device secret.
            assert (tmp / name / "keys.json").exists() and (tmp / name / MAC_KEY_FILE).exists()
        else:
            (tmp / name).write_text("")


def _local(env: dict[str, str], paths: dict[str, str]) -> dict[str, str]:
    """`env` with each mounted file's path pointed at its source here."""
    return {key: paths.get(value, value) for key, value in env.items()}


def test_each_service_loads_its_settings_from_compose(doc: dict[str, Any], tmp_path: Path) -> None:
    """Every AUTHGATE_* / MEMBERS_* name compose sets is one the service reads, and the
    values (with .env.example's) make a settings object without a single problem."""
    _prepared_secrets(doc, tmp_path)
    loaders = {
        "issuer": (issuer_settings.OPTIONS, "AUTHGATE_", issuer_settings.load_settings),
        "verifier": (verifier_settings.OPTIONS, "AUTHGATE_", verifier_settings.load_settings),
    }
    for name, (options, prefix, load) in loaders.items():
        service = doc["services"][name]
        env = _local(environment(service), mounted(doc, service, tmp_path))
        known = {opt.env for opt in options}
        assert {k for k in env if k.startswith(prefix)} - known == set(), name
        try:
            load((), env)
        except ConfigError as exc:
            pytest.fail(f"{name}: {exc}")
    members = doc["services"]["members"]
    env = environment(members)
    known = {opt.env for opt in members_settings.OPTIONS}
    assert set(env) - known == set()
    env["MEMBERS_DB"] = str(tmp_path / "members.db")  # a volume in the container
    members_settings.load((), env)


def test_a_bad_value_in_compose_is_refused_by_the_service(
    doc: dict[str, Any], tmp_path: Path
) -> None:
    """The check above can fail: the verifier refuses compose's values with a JWKS URL
    that is not http(s)."""
    service = doc["services"]["verifier"]
    env = _local(environment(service), mounted(doc, service, tmp_path))
    env["AUTHGATE_JWKS_URL"] = "ftp://issuer:9180/jwks"
    with pytest.raises(ConfigError, match="AUTHGATE_JWKS_URL"):
        verifier_settings.load_settings((), env)


def _named_addresses(text: str) -> list[tuple[str, int]]:
    """Every `name:port` of a topology service in `text` (URLs and bare addresses)."""
    names = "|".join(map(re.escape, topology.PORTS))
    return [(m.group(1), int(m.group(2)))
            for m in re.finditer(rf"(?<![\w.-])({names}):(\d+)\b", text)]  # fmt: skip


def test_every_name_is_a_service_at_the_port_it_listens_on(doc: dict[str, Any]) -> None:
    services = doc["services"]
    ports = topology.service_ports(services)
    assert ports == dict(topology.PORTS)  # bin/demo reads the same description
    places = {
        # Read as data: its comments name the Admin API (kong:8001), not a service port.
        "kong/kong.yml": yaml.safe_dump(yaml.safe_load((REPO / "kong" / "kong.yml").read_text())),
        **{f"compose {name}": yaml.safe_dump(environment(s)) for name, s in services.items()},
    }
    seen = set()
    for place, text in places.items():
        for name, port in _named_addresses(text):
            assert port == ports[name], (
                f"{place}: {name}:{port}, but {name} listens on {ports[name]}"
            )
            seen.add(name)
    assert {"issuer", "members", "redis", "verifier", "kong", "rabbitmq"} <= seen
    # Each Python service is told to listen on the port it exposes, and checks that port.
    own_port = {"issuer": "AUTHGATE_PORT", "verifier": "AUTHGATE_PORT", "members": "MEMBERS_PORT"}
    for name, variable in own_port.items():
        assert int(environment(services[name])[variable]) == ports[name], name
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{ports[name]}/" in probe, name
    # nginx listens where compose publishes it.
    assert environment(services["nginx"])["AUTHGATE_NGINX_LISTEN"].endswith(f":{ports['nginx']}")


def test_nginx_accepts_the_site_compose_renders(doc: dict[str, Any], tmp_path: Path) -> None:
    """The template as the nginx image renders it from compose's values: its names are
    pointed at loopback only so that `nginx -t` can resolve them here."""
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.fail("nginx is not installed (bin/setup installs it)")
    env = environment(doc["services"]["nginx"])
    assert env["NGINX_ENVSUBST_FILTER"] == "^AUTHGATE_"  # nginx's own $variables stay
    mounts = {v.split(":")[1]: v.split(":")[0] for v in doc["services"]["nginx"]["volumes"]}
    assert (
        mounts["/etc/nginx/templates/nginx.conf.template"]
        == "../nginx/templates/stack.conf.template"
    )
    assert mounts["/etc/nginx/authgate"] == "../nginx/authgate"
    values = {**topology.nginx_values(topology.PORTS), "AUTHGATE_NGINX_RUNTIME": str(tmp_path),
              "AUTHGATE_NGINX_ERROR_LOG": str(tmp_path / "error.log"),
              "AUTHGATE_NGINX_ACCESS_LOG": str(tmp_path / "access.log")}  # fmt: skip
    assert values["AUTHGATE_GATEWAY_ADDR"] == f"127.0.0.1:{topology.PORTS['kong']}"
    Nginx(tmp_path, NGINX_DIR / "templates" / "stack.conf.template", values).check()


def test_the_image_runs_what_compose_asks_for(doc: dict[str, Any]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    scripts = project["project"]["scripts"]
    dockerfile = (REPO / "Dockerfile").read_text()
    for name in PYTHON_SERVICES:
        service = doc["services"][name]
        assert service["build"] == {"context": "..", "dockerfile": "Dockerfile"}, name
        command = service["command"]
        if command[:2] == ["python", "-m"]:
            module = REPO.joinpath(*command[2].split("."))
            assert (module / "__main__.py").exists(), command
        else:
            assert command[0] in scripts, command
        assert service["healthcheck"]["test"][1] in scripts, name
    # The image's own default command and health check are entry points too.
    assert re.search(r'^CMD \["(authgate-[a-z]+)"\]', dockerfile, re.M)[1] in scripts  # type: ignore[index]
    assert '"authgate-healthcheck"' in dockerfile and "authgate-healthcheck" in scripts
    # Every file the Dockerfile copies exists (a wheel built without one would lack it).
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert (REPO / path).exists(), path
    # The packages the wheel ships are the ones copied into the build stage.
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in packages:
        assert f"COPY {package.rstrip('*')}/ " in dockerfile, package


def test_only_nginx_is_published_and_the_inside_has_no_way_out(doc: dict[str, Any]) -> None:
    services = doc["services"]
    assert [n for n, s in services.items() if s.get("ports")] == ["nginx"]
    assert doc["networks"]["internal"]["internal"] is True
    for name, service in services.items():
        assert "internal" in service["networks"], name
        if name not in ("nginx", "issuer"):
            assert service["networks"] == ["internal"], name
    for name, service in services.items():
        assert "healthcheck" in service, name
        assert service.get("restart") == "unless-stopped", name
        for needed in service.get("depends_on", {}).values():
            assert needed == {"condition": "service_healthy"}, name
    # Keys and provider secrets reach the issuer as files, never as environment values.
    issuer_env = environment(services["issuer"])
    assert not [k for k in issuer_env if "SECRET" in k or "KEY" in k.split("_")]
    assert set(services["issuer"]["secrets"]) == set(doc["secrets"])
    assert ENV_EXAMPLE.exists()
