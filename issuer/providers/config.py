"""The providers file (`AUTHGATE_PROVIDERS_FILE`): every problem reported at once.

A secret is written one way only, `{env: NAME}` or `{file: PATH}`: the providers file
lives in config repositories and ConfigMaps, so a secret written into it is a leaked
secret. An inline value is refused (and never echoed).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from authgate.config import ConfigError, read_yaml

from .kinds import PROFILES, TYPES

ENDPOINT_NAMES = ("authorize", "token", "userinfo", "emails", "jwks")
REFERENCE_SYNTAX = "{env: NAME} or {file: PATH}"
KNOWN_KEYS = frozenset(
    {"name", "type", "display_name", "client_id", "client_secret", "scopes", "issuer", "endpoints"}
)


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    type: str
    display_name: str
    client_id: str
    client_secret: str | None = field(repr=False)
    scopes: tuple[str, ...]
    issuer: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)


class ProvidersError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def load_providers(path: str) -> tuple[ProviderConfig, ...]:
    try:
        document = read_yaml(path)
    except ConfigError as exc:
        raise ProvidersError(exc.problems) from exc
    if not isinstance(document, dict) or not isinstance(document.get("providers"), list):
        raise ProvidersError(["the file must be a mapping with a list under `providers`"])
    problems: list[str] = []
    configs: list[ProviderConfig] = []
    names: set[str] = set()
    for index, raw in enumerate(document["providers"]):
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str):
            if name in names:
                problems.append(f"providers[{index}].name: {name!r} is used twice")
            names.add(name)
        config = _provider(f"providers[{index}]", raw, problems)
        if config is not None:
            configs.append(config)
    if problems:
        raise ProvidersError(problems)
    return tuple(configs)


def _provider(where: str, raw: Any, problems: list[str]) -> ProviderConfig | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    start = len(problems)
    for key in sorted(set(map(str, raw)) - KNOWN_KEYS):
        problems.append(f"{where}.{key}: unknown key")
    name, kind = raw.get("name"), raw.get("type")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
        problems.append(f"{where}.name: required; lower-case letters, digits, - and _")
    profile = PROFILES.get(kind) if isinstance(kind, str) else None
    if profile is None:
        problems.append(f"{where}.type: must be one of {', '.join(TYPES)}")
    client_id = raw.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        problems.append(f"{where}.client_id: required")
    who = f"provider {name!r}" if isinstance(name, str) else "this provider"
    secret = _secret(f"{where}.client_secret", who, raw.get("client_secret"), problems)
    if secret is None and "client_secret" not in raw and profile and profile.secret_required:
        problems.append(f"{where}.client_secret: required for {kind} ({REFERENCE_SYNTAX})")
    scopes = raw.get("scopes", list(profile.default_scopes if profile else ()))
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
        problems.append(f"{where}.scopes: must be a list of strings")
    issuer = raw.get("issuer")
    if (profile is not None and profile.discovery) and (
        not isinstance(issuer, str) or not issuer.startswith(("https://", "http://"))
    ):
        problems.append(f"{where}.issuer: required for {kind} (the issuer URL)")
    endpoints = raw.get("endpoints", {})
    if not isinstance(endpoints, dict) or not all(
        k in ENDPOINT_NAMES and isinstance(v, str) for k, v in endpoints.items()
    ):
        problems.append(f"{where}.endpoints: a mapping of {', '.join(ENDPOINT_NAMES)} to URLs")
    if len(problems) > start:
        return None
    return ProviderConfig(
        name=str(name),
        type=str(kind),
        display_name=str(raw.get("display_name") or str(name).title()),
        client_id=str(client_id),
        client_secret=secret,
        scopes=tuple(scopes),
        issuer=issuer.rstrip("/") if isinstance(issuer, str) else None,
        endpoints=dict(endpoints),
    )


def _secret(where: str, who: str, value: Any, problems: list[str]) -> str | None:
    """The secret `{env: NAME}` or `{file: PATH}` refers to. A problem names the field
    and the provider, never the value."""
    if value is None:
        return None
    if isinstance(value, str):
        problems.append(f"{where}: {who} gives its secret inline; write {REFERENCE_SYNTAX}")
        return None
    kind, ref = (
        next(iter(value.items())) if isinstance(value, dict) and len(value) == 1 else ("", None)
    )
    if not isinstance(ref, str) or not ref or kind not in ("env", "file"):
        problems.append(f"{where}: {who}: a secret is written {REFERENCE_SYNTAX}")
        return None
    if kind == "env":
        if ref not in os.environ:
            problems.append(f"{where}: environment variable {ref} is not set ({who})")
            return None
        secret = os.environ[ref].strip()
    else:
        try:
            with open(ref, encoding="utf-8") as fh:
                secret = fh.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            problems.append(f"{where}: cannot read {ref}: {reason} ({who})")
            return None
    if not secret:
        problems.append(f"{where}: {kind} {ref} is empty ({who})")
        return None
    return secret
