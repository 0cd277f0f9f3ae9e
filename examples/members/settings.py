"""The member service's settings: flags over `MEMBERS_*` environment variables over
defaults, validated all at once so a bad deployment is fixed in one round."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENV_PREFIX = "MEMBERS_"
#: AMQP short strings (exchange and queue names) are at most 255 bytes (AMQP 0-9-1 §4.2.5.3).
AMQP_NAME_MAX = 255


class SettingsError(Exception):
    """Every problem found in the configuration, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    db: Path
    amqp_url: str
    exchange: str
    queue: str

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dlq"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.queue}.dlx"


def _host(raw: str) -> str:
    if not raw.strip() or any(c.isspace() for c in raw):
        raise ValueError("must be a host name or address")
    return raw


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise ValueError("must be a whole number") from None
    if not 1 <= port <= 65535:
        raise ValueError("must be between 1 and 65535")
    return port


def _db(raw: str) -> Path:
    if not raw:
        raise ValueError("must be a file path")
    path = Path(raw)
    if path.is_dir():
        raise ValueError("is a directory, not a file")
    return path


#: Between two URLs of a cluster's nodes: a comma followed by a scheme, so that a comma
#: inside a password stays in it.
_SEPARATOR = re.compile(r"\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def amqp_urls(value: str) -> tuple[str, ...]:
    """The RabbitMQ URLs in the setting: one, or one per cluster node, comma-separated."""
    return tuple(_SEPARATOR.split(value.strip()))


def _amqp_url(raw: str) -> str:
    urls = amqp_urls(raw)
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("must be amqp:// or amqps:// URLs with a host, comma-separated")
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError:
            raise ValueError("has a bad port") from None
    return ",".join(urls)


def _amqp_name(raw: str) -> str:
    if not raw or any(c.isspace() for c in raw):
        raise ValueError("must be a non-empty name without spaces")
    if len(raw.encode()) > AMQP_NAME_MAX - len(".dlq"):
        raise ValueError(f"must be under {AMQP_NAME_MAX - len('.dlq')} bytes")
    if raw.startswith("amq."):
        raise ValueError("names starting with 'amq.' are reserved by RabbitMQ")
    return raw


@dataclass(frozen=True)
class _Option:
    name: str
    parse: Callable[[str], Any]
    default: str
    help: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


#: Each default is written here and nowhere else.
OPTIONS = (
    _Option("host", _host, "127.0.0.1", "address to listen on"),
    _Option("port", _port, "8081", "port to listen on"),
    _Option("db", _db, "run/members.db", "SQLite file the members are kept in"),
    _Option(
        "amqp_url",
        _amqp_url,
        "amqp://guest:guest@127.0.0.1:5672/",
        "RabbitMQ URL, or one per cluster node, comma-separated",
    ),
    _Option("exchange", _amqp_name, "authgate.events", "topic exchange of user events"),
    _Option("queue", _amqp_name, "members.user-deleted", "this service's queue of user.deleted"),
)


def redact_url(url: str) -> str:
    """`url` (or every URL of a comma-separated list) without its password, for logs."""
    return ",".join(_redact_one(one) for one in amqp_urls(url))


def _redact_one(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[1]}"
    return urlunsplit(parts._replace(netloc=netloc))


def load(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Settings from `argv` and `environ`, or SettingsError listing every bad value."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.members",
        description="A member service behind authgate (an example upstream).",
    )
    for opt in OPTIONS:
        parser.add_argument(
            opt.flag, dest=opt.name, help=f"{opt.help} [env {opt.env}] (default: {opt.default})"
        )
    args = vars(parser.parse_args(list(argv)))
    values: dict[str, Any] = {}
    problems: list[str] = []
    for opt in OPTIONS:
        raw, source = args[opt.name], opt.flag
        if raw is None:
            raw, source = environ.get(opt.env), opt.env
        if raw is None:
            raw, source = opt.default, "default"
        try:
            values[opt.name] = opt.parse(raw)
        except ValueError as exc:
            # A URL may carry a password: never echo it back.
            shown = redact_url(raw) if opt.name == "amqp_url" else raw
            problems.append(f"{source}={shown!r}: {exc}")
    if problems:
        raise SettingsError(problems)
    return Settings(**values)
