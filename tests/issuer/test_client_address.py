"""The client's address behind more than one proxy (nginx, then Kong or `serve`): the
issuer takes the right-most X-Forwarded-For hop that is not a trusted proxy, so per-address
limits follow each client, not the proxy next to the issuer."""

from __future__ import annotations

import secrets

import httpx
import pytest

from authgate.config import ConfigError
from issuer.proxies import TrustedProxies
from issuer.settings import load_settings

from ..social import Social
from .corpus import fresh_email, sign_in


def _client(address: str) -> httpx.Client:
    # As nginx (on loopback, trusted) hands it on to the gateway, which appends nginx.
    return httpx.Client(timeout=15, follow_redirects=False,
                        headers={"X-Forwarded-For": f"{address}, 127.0.0.1"})  # fmt: skip


def test_per_address_limits_follow_the_client_through_two_proxies(social: Social) -> None:
    sprayer = f"10.{secrets.randbelow(255)}.{secrets.randbelow(255)}.7"
    with _client(sprayer) as spray, _client("10.200.0.9") as bystander:
        answers = [sign_in(social, spray, fresh_email("hops"), "spray guess 1") for _ in range(11)]
        assert [a.status_code for a in answers[:10]] == [401] * 10
        assert answers[10].status_code == 429  # the sprayer's own address is slowed...
        other = sign_in(social, bystander, fresh_email("hops"), "spray guess 1")
        assert other.status_code == 401  # ...and not everyone behind the same proxies


def test_a_client_cannot_name_a_trusted_proxy_to_hide(social: Social) -> None:
    """Hops are read right to left and only trusted ones skipped: a spoofed left-most hop
    is not believed over the address the trusted proxy saw."""
    with _client("10.201.0.1") as honest:
        honest.headers["X-Forwarded-For"] = "127.0.0.1, 10.201.0.1, 127.0.0.1"
        answers = [sign_in(social, honest, fresh_email("hide"), "spray guess 1") for _ in range(11)]
        assert answers[10].status_code == 429  # counted as 10.201.0.1, throttled


def test_trusted_proxies_are_addresses_or_networks() -> None:
    """compose and Kubernetes hand out a proxy's address at start: a network names it
    beforehand. (The issuer these tests run trusts 127.0.0.0/8, a network.)"""
    env = {"AUTHGATE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7,::1"}
    settings = load_settings((), env)
    assert settings.trusted_proxies == {"10.0.0.0/8", "192.168.1.7/32", "::1/128"}
    trusted = TrustedProxies(settings.trusted_proxies)
    assert trusted.holds("10.20.30.40") and trusted.holds("192.168.1.7") and trusted.holds("::1")
    assert not trusted.holds("192.168.1.8") and not trusted.holds("11.0.0.1")
    assert not trusted.holds("unknown") and not trusted.holds("10.0.0.1, 10.0.0.2")
    with pytest.raises(ConfigError, match=r"'10\.0\.0\.0/33' is not an IP address or network"):
        load_settings((), {"AUTHGATE_TRUSTED_PROXIES": "10.0.0.0/33"})
