"""Which peers are proxies whose X-Forwarded-For the issuer believes."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


class TrustedProxies:
    """The networks whose X-Forwarded-For is believed."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(n) for n in networks)

    def holds(self, address: str) -> bool:
        """Whether `address` is in one of the networks; anything that is not an IP
        address (a hop a client invented, "unknown") is not."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)
