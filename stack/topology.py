"""The topology's service names and ports, as the configuration files name them
(`kong/kong.yml` reaches `http://issuer:9180`, `http://members:8081`, Redis at
`redis://redis:6379`): on one machine each name is 127.0.0.1 and the port may differ, so
`bin/demo` runs a copy of a file with every `name:port` turned into its loopback address.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: Host name → the port the configuration files give it.
PORTS: Mapping[str, int] = {
    "redis": 6379,
    "rabbitmq": 5672,
    "issuer": 9180,
    "verifier": 9181,
    "kong": 8000,
    "members": 8081,
    "nginx": 8080,
}


def on_loopback(text: str, ports: Mapping[str, int]) -> str:
    """`text` with each `//name:port` of the topology pointed at 127.0.0.1 and the port
    `ports` gives that name (names not in `ports` are left as they are)."""

    def local(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"//127.0.0.1:{ports[name]}" if name in ports else match.group(0)

    names = "|".join(re.escape(n) for n in PORTS)
    return re.sub(rf"//({names}):\d+", local, text)
