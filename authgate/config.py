"""Settings from environment variables and command-line flags, validated all at once.

Each service declares its options once (name, env var, flag, parser, default); `load`
reads flags over environment over defaults and collects every problem before failing,
so an operator fixes a bad deployment in one round (STYLE.md: oauth2-proxy's validation).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from authgate import redis_client

ENV_PREFIX = "AUTHGATE_"


class ConfigError(Exception):
    """Invalid configuration: carries every problem found, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Option:
    """One setting: `AUTHGATE_<NAME>` in the environment, `--<name>` on the command line."""

    name: str
    parse: Callable[[str], Any]
    default: str | None
    help: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def load(
    options: Sequence[Option],
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    prog: str,
    description: str,
) -> tuple[dict[str, Any], list[str]]:
    """Parse every option; return the values and the problems found (never raises on bad values).

    `-h/--help` and unknown flags are argparse's business and exit as argparse does.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for opt in options:
        default = f" (default: {opt.default})" if opt.default not in (None, "") else ""
        parser.add_argument(
            opt.flag, dest=opt.name, default=None, help=f"{opt.help} [env {opt.env}]{default}"
        )
    args = vars(parser.parse_args(list(argv)))
    values: dict[str, Any] = {}
    problems: list[str] = []
    for opt in options:
        raw = args[opt.name]
        source = opt.flag
        if raw is None:
            raw, source = environ.get(opt.env), opt.env
        if raw is None:
            raw, source = opt.default, "default"
        if raw is None:
            values[opt.name] = None
            continue
        try:
            values[opt.name] = opt.parse(raw)
        except ValueError as exc:
            values[opt.name] = None
            problems.append(f"{opt.env} / {opt.flag} (from {source}): {exc}")
    return values, problems


def to_environ(options: Sequence[Option], settings: object) -> dict[str, str]:
    """Settings as environment variables, so worker processes rebuild the same object."""
    environ = {}
    for opt in options:
        value = getattr(settings, opt.name)
        if isinstance(value, frozenset | tuple):
            environ[opt.env] = ",".join(sorted(value))
        elif value is not None:
            environ[opt.env] = str(value)
    return environ


# --- Parsers: each raises ValueError with a message an operator can act on. ---


def text(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def optional_text(raw: str) -> str | None:
    return raw.strip() or None


def integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return parse


def number(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
        if not low <= value <= high:
            raise ValueError(f"{value:g} is outside {low:g}..{high:g}")
        return value

    return parse


def comma_list(raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not items:
        raise ValueError("must name at least one item")
    return items


def url(*schemes: str) -> Callable[[str], str | None]:
    """A URL with one of `schemes` and a host; empty means unset."""

    def parse(raw: str) -> str | None:
        value = raw.strip()
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise ValueError(f"{redact_url(value)!r} must use {' or '.join(schemes)}")
        if not parts.hostname and parts.scheme not in ("unix", "file"):
            raise ValueError(f"{redact_url(value)!r} has no host")
        return value

    return parse


def redis_url(raw: str) -> str:
    """A Redis URL in the syntax of `authgate.redis_client` (standalone, TLS, Sentinel,
    Cluster), checked whole, so a bad one fails at start with the reason."""
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    try:
        return redis_client.validate(value)
    except ValueError as exc:
        raise ValueError(f"{redact_url(value)!r} {exc}") from None


def existing_file(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not os.path.isfile(value):
        raise ValueError(f"{value!r} is not a readable file")
    return value


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"{raw!r} is not true or false")


def log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"{raw!r} is not one of debug, info, warning, error")
    return value


def redact_url(value: str) -> str:
    """`value` with any password replaced, for log lines and error messages."""
    parts = urlsplit(value)
    if parts.password is None:
        return value
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def read_yaml(path: str) -> Any:
    """The YAML document in the file at `path`. Raises ConfigError with one problem that
    names the file: unreadable, not UTF-8, or not valid YAML."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError([f"{path}: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 (byte {exc.start})"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc


#: Seconds; the deadlines `authgate.serving` enforces, each service's default.
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0

#: Options every HTTP service has: read deadlines (`authgate.serving`) and log level.
SERVICE_OPTIONS: tuple[Option, ...] = (
    Option("header_timeout", number(0.5, 600), str(int(DEFAULT_HEADER_TIMEOUT)),
           "a request's headers must arrive within this many seconds, or it is closed"),
    Option("body_timeout", number(0.5, 600), str(int(DEFAULT_BODY_TIMEOUT)),
           "a request's body must arrive within this many seconds of its headers"),
    Option("log_level", log_level, "INFO", "debug, info, warning or error"),
)  # fmt: skip
