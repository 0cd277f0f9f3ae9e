"""compose/compose.yml read as compose reads it: `${NAME}`, `${NAME:-default}` and
`${NAME:?message}` interpolated from compose/.env.example (Compose Specification,
"Interpolation"), so the checks see the values a deployment made from the example gets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..harness import REPO

COMPOSE = REPO / "compose"
COMPOSE_FILE = COMPOSE / "compose.yml"
ENV_EXAMPLE = COMPOSE / ".env.example"
#: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, ${NAME?err}; `$$` is a `$`.
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\$\{[^}]*\})*))?\}")


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def variables_read(text: str) -> set[str]:
    """The names of the variables `text` interpolates."""
    return {m.group(1) for m in VARIABLE.finditer(text.replace("$$", ""))}


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        present = env.get(name)
        if operator in (":-", ":?") and not present:
            present = None
        if present is not None:
            return present
        if operator in ("-", ":-"):
            return interpolate(argument, env)
        if operator in ("?", ":?"):
            raise ValueError(f"{name}: {argument}")
        return ""

    return VARIABLE.sub(value, text).replace("$$", "$")


def document(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """compose.yml, interpolated with `env` (default: compose/.env.example)."""
    text = COMPOSE_FILE.read_text()
    loaded: dict[str, Any] = yaml.safe_load(
        interpolate(text, env_example() if env is None else env)
    )
    return loaded


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment`, map or list form, as strings."""
    raw = service.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(k): str(v) for k, v in raw.items()}


def mounted(doc: Mapping[str, Any], service: Mapping[str, Any], tmp: Path) -> dict[str, str]:
    """Where each file a service reads from a compose config or secret comes from on
    this machine: its `target` → the source file (a secret's own copy under `tmp`)."""
    paths = {}
    for ref in service.get("configs", []):
        source, target = (
            (ref, f"/{ref}") if isinstance(ref, str) else (ref["source"], ref["target"])
        )
        paths[target] = str((COMPOSE / doc["configs"][source]["file"]).resolve())
    for ref in service.get("secrets", []):
        source = ref if isinstance(ref, str) else ref["source"]
        paths[f"/run/secrets/{source}"] = str(tmp / source)
    return paths
