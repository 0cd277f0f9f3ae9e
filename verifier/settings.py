"""The verifier's settings: one frozen object, built and validated once at start."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from authgate import config
from authgate.config import ConfigError, Option
from authgate.contract import (
    ASYMMETRIC_ALGORITHMS,
    DEFAULT_ALGORITHMS,
    DEFAULT_LEEWAY,
    DEFAULT_REDIS_URL,
)
from authgate.tokens import DEFAULT_CACHE_BYTES

from .policy import DEFAULT_POLICY, Policy, PolicyError, load_policy

#: RFC 6265 §4.1.1: a cookie name is an RFC 2616 token.
COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: The HTTP servers the verifier runs under (verifier/server.py, or uvicorn).
SERVERS = ("protocol", "uvicorn")


def _algorithms(raw: str) -> frozenset[str]:
    names = config.comma_list(raw)
    refused = [n for n in names if n not in ASYMMETRIC_ALGORITHMS]
    if refused:
        allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
        raise ValueError(
            f"{', '.join(refused)} not allowed; choose from {allowed}"
            " (none and HMAC are never accepted by a verifier)"
        )
    return frozenset(names)


def _server(raw: str) -> str:
    value = raw.strip().lower()
    if value not in SERVERS:
        raise ValueError(f"{raw!r} is not one of {', '.join(SERVERS)}")
    return value


def _cookie_name(raw: str) -> str:
    value = raw.strip()
    if not COOKIE_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid cookie name")
    return value


OPTIONS: tuple[Option, ...] = (
    Option("host", config.text, "127.0.0.1", "address to listen on"),
    Option("port", config.integer(1, 65535), "9181", "port to listen on"),
    Option("workers", config.integer(1, 64), "1", "worker processes"),
    Option("server", _server, "protocol",
           "protocol: the verifier's own HTTP server (httptools + uvloop); uvicorn: ASGI"),
    Option("redis_url", config.redis_url, DEFAULT_REDIS_URL,
           "Redis holding the sessions"),
    Option("issuer", config.text, None, "expected `iss` of tokens (the issuer's base URL)"),
    Option("audience", config.text, None, "expected `aud` of tokens"),
    Option("jwks_url", config.url("http", "https"), "", "the issuer's JWKS URL"),
    Option("jwks_file", config.existing_file, "", "a JWKS file, instead of a URL"),
    Option("algorithms", _algorithms, ",".join(DEFAULT_ALGORITHMS), "allowed JWS algorithms"),
    Option("policy_file", config.existing_file, "",
           "access rules (YAML); without it every request needs a session"),
    Option("session_cookie", _cookie_name, "__Host-authgate_session", "session cookie name"),
    Option("login_url", config.url("http", "https"), "",
           "the issuer's login page; 401 answers carry it with `rd` for browser redirects"),
    Option("leeway", config.integer(0, 60), str(DEFAULT_LEEWAY),
           "clock skew allowed on exp/nbf/iat, seconds"),
    Option("token_cache_size", config.integer(0, 10_000_000), "100000",
           "verified tokens kept in memory (0: off)"),
    Option("token_cache_bytes", config.integer(1024, 1 << 40), str(DEFAULT_CACHE_BYTES),
           "memory the token cache may use, bytes (estimated per entry; oldest evicted)"),
    Option("session_cache_size", config.integer(0, 10_000_000), "100000",
           "session records kept in memory while subscribed (0: off)"),
    Option("session_cache_bytes", config.integer(1024, 1 << 40), str(DEFAULT_CACHE_BYTES),
           "memory the session cache may use, bytes (estimated per entry; oldest evicted)"),
    Option("session_cache_max_age", config.number(0.1, 3600), "60",
           "longest a cached session record is used, seconds"),
    Option("jwks_refresh_interval", config.number(1, 86400), "300",
           "seconds between routine JWKS refreshes"),
    Option("jwks_kid_interval", config.number(0.1, 3600), "5",
           "an unknown kid triggers at most one JWKS fetch per this many seconds"),
    *config.SERVICE_OPTIONS,
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    workers: int
    server: str
    redis_url: str
    issuer: str
    audience: str
    jwks_url: str | None
    jwks_file: str | None
    algorithms: frozenset[str]
    policy_file: str | None
    policy: Policy
    session_cookie: str
    login_url: str | None
    leeway: int
    token_cache_size: int
    token_cache_bytes: int
    session_cache_size: int
    session_cache_bytes: int
    session_cache_max_age: float
    jwks_refresh_interval: float
    jwks_kid_interval: float
    header_timeout: float
    body_timeout: float
    log_level: str


def load_settings(argv: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> Settings:
    """Flags over environment over defaults; raises ConfigError listing every problem."""
    values, problems = config.load(
        OPTIONS,
        argv,
        os.environ if environ is None else environ,
        prog="authgate-verifier",
        description="Answer nginx auth_request subrequests from Redis.",
    )
    for required in ("issuer", "audience"):
        if values[required] is None:
            problems.append(f"AUTHGATE_{required.upper()} / --{required}: required")
    if values["jwks_url"] is None and values["jwks_file"] is None:
        problems.append("AUTHGATE_JWKS_URL or AUTHGATE_JWKS_FILE: one is required")
    elif values["jwks_url"] is not None and values["jwks_file"] is not None:
        problems.append("AUTHGATE_JWKS_URL and AUTHGATE_JWKS_FILE: give only one")
    policy = DEFAULT_POLICY
    if values["policy_file"] is not None:
        try:
            policy = load_policy(values["policy_file"])
        except PolicyError as exc:
            problems += [f"AUTHGATE_POLICY_FILE {values['policy_file']}: {p}" for p in exc.problems]
    if problems:
        raise ConfigError(problems)
    return Settings(policy=policy, **values)
