"""The issuer's settings: one frozen object, built and validated once at start."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from authgate import config, redis_client
from authgate.config import ConfigError, Option
from authgate.contract import DEFAULT_ALGORITHMS, DEFAULT_AMQP_URL, DEFAULT_REDIS_URL

from . import amqp
from .providers import ProviderConfig, ProvidersError, load_providers


def _origins(raw: str) -> tuple[str, ...]:
    """Allowed post-login return origins: `scheme://host[:port]`, comma-separated."""
    origins = []
    for item in config.comma_list(raw):
        parts = urlsplit(item)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
        ):
            raise ValueError(f"{item!r} is not an origin like https://app.example.com")
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


def _color(raw: str) -> str:
    value = raw.strip().lower()
    if not re.fullmatch(r"#[0-9a-f]{6}", value):
        raise ValueError(f"{raw!r} is not a colour written #rrggbb")
    return value


def _logo_url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if value.startswith("/") and not value.startswith("//"):
        return value
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"{value!r} must be an https URL or a path starting with /")
    return value


def _networks(raw: str) -> frozenset[str]:
    """Addresses or networks (`10.0.0.0/8`): in compose and Kubernetes a proxy's address
    is given out at start, so only its network is known beforehand."""
    networks = set()
    for item in (item.strip() for item in raw.split(",")):
        if not item:
            continue
        try:
            networks.add(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return frozenset(networks)


OPTIONS: tuple[Option, ...] = (
    Option("host", config.text, "127.0.0.1", "address to listen on"),
    Option("port", config.integer(1, 65535), "9180", "port to listen on"),
    Option("public_url", config.url("http", "https"), "http://127.0.0.1:9180",
           "the issuer's public base URL; also the `iss` of its tokens"),
    Option("redis_url", config.redis_url, DEFAULT_REDIS_URL,
           "Redis holding users and sessions"),
    Option("revocation_replicas", config.integer(0, 10), "0",
           "replicas that must hold each ended or rewritten session before the issuer goes "
           "on (Redis WAIT; standalone or Sentinel): 0 = don't wait"),
    Option("revocation_wait_ms", config.integer(1, 60000), "500",
           "how long an ending waits for those replicas, ms"),
    Option("keys_dir", config.text, "run/issuer/keys",
           "signing keys; made on first start when empty"),
    Option("signing_algorithm", config.text, "EdDSA", "EdDSA or ES256, for new keys"),
    Option("providers_file", config.existing_file, "", "identity providers (YAML)"),
    Option("return_origins", _origins, "http://127.0.0.1:8080",
           "origins allowed as post-login return URLs (rd), comma-separated"),
    Option("audience", config.text, "authgate",
           "`aud` of the tokens (the verifiers' AUTHGATE_AUDIENCE)"),
    Option("session_cookie", config.optional_text, "",
           "session cookie name; default: __Host-authgate_session on https, else authgate_session"),
    Option("access_token_ttl", config.integer(60, 86400), "600", "access token lifetime, seconds"),
    Option("session_ttl", config.integer(300, 90 * 86400), "604800",
           "session lifetime (absolute), seconds"),
    Option("refresh_idle_ttl", config.integer(60, 90 * 86400), "86400",
           "a refresh token unused this long expires, seconds"),
    Option("refresh_grace", config.number(0, 60), "5",
           "a refresh token used again within this many seconds gets the same answer"),
    Option("token_rate", config.integer(1, 100_000), "60",
           "token, revocation and device requests per client address per minute"),
    Option("client_token_rate", config.integer(1, 100_000), "60",
           "token requests per authenticated API client per minute"),
    Option("local_accounts", config.boolean, "false", "allow email + password accounts"),
    Option("trusted_proxies", _networks, "",
           "proxies whose X-Forwarded-For is believed (for per-IP rate limits): addresses or"
           " networks, comma-separated"),
    Option("amqp_url", amqp.parse_setting, DEFAULT_AMQP_URL,
           "RabbitMQ, for user events: one URL, or one per cluster node separated by commas"),
    Option("amqp_quorum_size", config.integer(1, 9), "3",
           "replicas of each quorum queue the issuer declares (RabbitMQ places at most one"
           " per node)"),
    Option("events_exchange", config.text, "authgate.events", "topic exchange the events go to"),
    Option("events_relay", config.boolean, "true",
           "publish the outbox from this process (else run `authgate-issuer events relay`)"),
    Option("relay_claim_idle", config.number(0.1, 3600), "30",
           "outbox entries a relay left unacknowledged this long are taken over, seconds"),
    Option("inbound_exchange", config.text, "member.events",
           "topic exchange of the lifecycle events the issuer consumes"),
    Option("inbound_routing_keys", config.comma_list, "user.deleted,user.suspended",
           "their routing keys (user.deleted deletes the user, user.suspended suspends)"),
    Option("inbound_queue", config.text, "authgate.issuer.lifecycle",
           "the issuer's quorum queue for them ('' or off: consume nothing)"),
    Option("inbound_delivery_limit", config.integer(1, 1000), "5",
           "failed deliveries a message may be returned for before it is dead-lettered"),
    Option("product_name", config.text, "authgate", "the name the sign-in pages show"),
    Option("logo_url", _logo_url, "", "a logo for the pages: an https URL or a path on this site"),
    Option("brand_color", _color, "#1f5fbf",
           "the pages' accent colour, #rrggbb (dark enough for white text on it)"),
    Option("landing_url", config.text, "/_authgate/account",
           "where a sign-in that was not sent from a page goes afterwards"),
    *config.SERVICE_OPTIONS,
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    public_url: str
    redis_url: str
    revocation_replicas: int
    revocation_wait_ms: int
    keys_dir: str
    signing_algorithm: str
    providers_file: str | None
    providers: tuple[ProviderConfig, ...]
    return_origins: tuple[str, ...]
    audience: str
    session_cookie: str
    access_token_ttl: int
    session_ttl: int
    refresh_idle_ttl: int
    refresh_grace: float
    token_rate: int
    client_token_rate: int
    local_accounts: bool
    trusted_proxies: frozenset[str]
    amqp_url: str
    amqp_quorum_size: int
    events_exchange: str
    events_relay: bool
    relay_claim_idle: float
    inbound_exchange: str
    inbound_routing_keys: tuple[str, ...]
    inbound_queue: str
    inbound_delivery_limit: int
    product_name: str
    logo_url: str | None
    brand_color: str
    landing_url: str
    header_timeout: float
    body_timeout: float
    log_level: str

    @property
    def secure_cookies(self) -> bool:
        """Cookies are `Secure` unless the issuer is plain http on loopback."""
        return not (self.public_url.startswith("http://") and _loopback(self.public_url))


def _loopback(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def load_settings(argv: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> Settings:
    """Flags over environment over defaults; raises ConfigError listing every problem."""
    values, problems = config.load(
        OPTIONS,
        argv,
        os.environ if environ is None else environ,
        prog="authgate-issuer",
        description="Log users in with OAuth/OIDC providers; issue tokens and sessions.",
    )
    if values["signing_algorithm"] not in (None, *DEFAULT_ALGORITHMS):
        problems.append(
            f"AUTHGATE_SIGNING_ALGORITHM: {values['signing_algorithm']!r} is not EdDSA or ES256"
        )
    if values["public_url"] is not None:
        values["public_url"] = values["public_url"].rstrip("/")
        if values["public_url"].startswith("http://") and not _loopback(values["public_url"]):
            problems.append("AUTHGATE_PUBLIC_URL: plain http is only allowed on loopback")
    providers: tuple[ProviderConfig, ...] = ()
    if values["providers_file"] is not None:
        try:
            providers = load_providers(values["providers_file"])
        except ProvidersError as exc:
            problems += [
                f"AUTHGATE_PROVIDERS_FILE {values['providers_file']}: {p}" for p in exc.problems
            ]
    cluster = values["redis_url"] and redis_client.parse(values["redis_url"]).topology == "cluster"
    if values["revocation_replicas"] and cluster:
        problems.append(
            "AUTHGATE_REVOCATION_REPLICAS: WAIT is not available on a Redis Cluster (it counts "
            "the writes of its own connection, which a cluster client does not keep)"
        )
    if not values["session_cookie"]:
        https = (values["public_url"] or "").startswith("https://")
        values["session_cookie"] = "__Host-authgate_session" if https else "authgate_session"
    if problems:
        raise ConfigError(problems)
    return Settings(providers=providers, **values)
