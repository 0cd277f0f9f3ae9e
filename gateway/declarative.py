"""Reading a kong.yml: decK's env substitution, YAML, then every check at once.

The supported subset of Kong's 3.0 declarative format: services (with nested routes and
plugins), routes (paths: prefix or `~regex`, methods, hosts, strip_path, preserve_host),
plugins (global, per service, per route, per consumer), consumers, upstreams and targets.
A field outside that subset is an error, not silently ignored: `serve` would otherwise
behave differently from the Kong the same file is synced to.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from gateway import entities
from gateway.model import Config
from gateway.plugins import DEFAULT_DIR

Problem = tuple[str, str]

# decK: ${{ env "DECK_NAME" }}; only DECK_-prefixed variables may be read.
_ENV = re.compile(r"\$\{\{\s*env\s+\"([^\"]*)\"\s*\}\}")

TOP_LEVEL = {
    "_format_version",
    "_transform",
    "services",
    "routes",
    "plugins",
    "consumers",
    "upstreams",
}


class DeclarativeError(Exception):
    """A kong.yml that is not valid: every problem, each with its path in the file."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} error(s)"]
        lines += [f"  {path}: {message}" if path else f"  {message}" for path, message in problems]
        super().__init__("\n".join(lines))


def read(source: str) -> str:
    """The file's text; `-` is stdin."""
    if source == "-":
        import sys

        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise DeclarativeError(source, [("", f"cannot read: {exc.strerror}")]) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Kong's YAML and JSON readers take UTF-8 only; say where, never a traceback.
        line = data.count(b"\n", 0, exc.start) + 1
        where = f"line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        raise DeclarativeError(source, [("", where)]) from exc


def substitute(text: str, environ: Mapping[str, str]) -> tuple[str, list[Problem]]:
    """decK's `${{ env "DECK_…" }}` substitution, with one problem per bad reference."""
    problems: list[Problem] = []

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        line = text.count("\n", 0, match.start()) + 1
        if not name.startswith("DECK_"):
            problems.append(("", f"line {line}: environment variable {name!r} must start DECK_"))
        elif name not in environ:
            problems.append(("", f"line {line}: environment variable {name} is not set"))
        else:
            return environ[name]
        return ""

    return _ENV.sub(value, text), problems


def parse(
    text: str,
    source: str = "kong.yml",
    *,
    environ: Mapping[str, str] | None = None,
    plugins_dir: Path = DEFAULT_DIR,
) -> Config:
    """The checked config, or DeclarativeError listing every problem."""
    text, problems = substitute(text, os.environ if environ is None else environ)
    if problems:
        raise DeclarativeError(source, problems)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DeclarativeError(source, [("", f"{where}not valid YAML: {problem}")]) from exc
    if not isinstance(doc, dict):
        raise DeclarativeError(source, [("", "expected a mapping at the top level")])
    problems = [(key, "unknown top-level key") for key in doc if key not in TOP_LEVEL]
    version = doc.get("_format_version")
    if version not in ("3.0", 3.0):
        problems.append(("_format_version", 'must be "3.0"'))
    if doc.get("_transform", True) is not True:
        problems.append(("_transform", "only _transform: true is supported"))
    builder = entities.Builder(plugins_dir)
    sections = _sections(builder)
    for key in [k for k in doc if k in sections]:  # in the file's order; finish() resolves refs
        build, items = sections[key], doc[key]
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append((key, "expected a list"))
            continue
        for i, item in enumerate(items):
            build(item, f"{key}[{i}]")
    config = builder.finish()
    problems += builder.problems
    if problems:
        raise DeclarativeError(source, problems)
    return config


def _sections(builder: entities.Builder) -> dict[str, Callable[[Any, str], None]]:
    return {
        "consumers": builder.consumer,
        "upstreams": builder.upstream,
        "services": builder.service,
        "routes": builder.route,
        "plugins": builder.plugin,
    }


def load(
    source: str,
    *,
    environ: Mapping[str, str] | None = None,
    plugins_dir: Path = DEFAULT_DIR,
) -> Config:
    return parse(read(source), source, environ=environ, plugins_dir=plugins_dir)
