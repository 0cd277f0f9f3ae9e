"""The topology's one description is `compose/compose.yml`: its service names and the
port each listens on (`expose`, or the container side of nginx's `ports`). `bin/demo` runs
the same services as processes on one machine, each name on 127.0.0.1: it reads the names
and ports from here, and the configuration files that name them (`kong/kong.yml` reaches
`http://issuer:9180`, nginx `verifier:9181`) are run as copies with every `name:port`
turned into its loopback address.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "compose" / "compose.yml"
#: nginx settings the process runner sets for itself (files in its run directory).
_LOCAL_NGINX = frozenset(
    {"AUTHGATE_NGINX_RUNTIME", "AUTHGATE_NGINX_ERROR_LOG", "AUTHGATE_NGINX_ACCESS_LOG"}
)


def compose_services(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    services: dict[str, Any] = document["services"]
    return services


def service_ports(services: Mapping[str, Any]) -> dict[str, int]:
    """Service name → the port it listens on inside the topology."""
    ports = {}
    for name, service in services.items():
        if service.get("expose"):
            ports[name] = int(str(service["expose"][0]).split("/")[0])
        elif service.get("ports"):
            # "${AUTHGATE_HTTP_PORT:-8080}:8080": the container's side is the last.
            ports[name] = int(str(service["ports"][0]).rsplit(":", 1)[1].split("/")[0])
    return ports


#: Host name → the port the configuration files give it.
PORTS: Mapping[str, int] = service_ports(compose_services())


_NAMES = "|".join(re.escape(name) for name in PORTS)
_URL_HOST = re.compile(rf"//({_NAMES}):\d+")
_ADDRESS = re.compile(rf"({_NAMES}):\d+")


def on_loopback(text: str, ports: Mapping[str, int]) -> str:
    """`text` with each `//name:port` of the topology pointed at 127.0.0.1 and the port
    `ports` gives that name (names not in `ports` are left as they are)."""

    def local(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"//127.0.0.1:{ports[name]}" if name in ports else match.group(0)

    return _URL_HOST.sub(local, text)


def nginx_values(ports: Mapping[str, int], path: Path = COMPOSE_FILE) -> dict[str, str]:
    """The `AUTHGATE_*` values compose gives nginx's template, with each `name:port`
    address of the topology on loopback at the port `ports` gives that name. The run
    directory and log files are the process runner's own, so they are left out."""
    environment = compose_services(path)["nginx"]["environment"]
    values = {}
    for key, value in environment.items():
        if not key.startswith("AUTHGATE_") or key in _LOCAL_NGINX:
            continue
        address = _ADDRESS.fullmatch(str(value))
        if address and address.group(1) in ports:
            value = f"127.0.0.1:{ports[address.group(1)]}"
        values[key] = str(value)
    return values
