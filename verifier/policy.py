"""Access rules: an ordered, first-match list read from a YAML file at start.

```yaml
rules:
  - name: admin                 # unique; nginx may select it with X-Authgate-Policy
    hosts: ["app.example.com", "*.example.com"]
    paths: ["/admin", "~^/api/v[0-9]+/admin/"]
    methods: [GET, POST]
    policy: authenticated       # public | authenticated | deny
    roles: [admin]              # any of
    scopes: [admin:write]       # all of
    kind: user                  # user (people) | client (service accounts); absent: both
```

Paths are matched against the request path after the normalization nginx applies to
`$uri` (percent-decoding, `.`/`..` resolution, `//` merging), so `/public/../admin` can
not pass as public. A prefix matches whole segments: `/admin` covers `/admin` and
`/admin/x`, never `/administrator`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authgate.config import ConfigError, read_yaml
from authgate.contract import KINDS

HTTP_METHOD = re.compile(r"^[A-Z]+$")


class Access(enum.Enum):
    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    access: Access
    exact_hosts: frozenset[str] = frozenset()
    host_suffixes: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    regexes: tuple[re.Pattern[str], ...] = ()
    methods: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    #: The session kinds admitted (contract.KINDS); empty admits both.
    kinds: frozenset[str] = frozenset()
    #: Whether a live session alone is not enough (roles, scopes or a kind); derived.
    restricted: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "restricted", bool(self.roles or self.scopes or self.kinds))

    def matches(self, host: str, path: str, method: str) -> bool:
        if (
            (self.exact_hosts or self.host_suffixes)
            and host not in self.exact_hosts
            and not host.endswith(self.host_suffixes)
        ):
            return False
        if self.methods and method not in self.methods:
            return False
        if self.prefixes or self.regexes:
            return any(_under(path, p) for p in self.prefixes) or any(
                r.search(path) for r in self.regexes
            )
        return True

    def allows(self, roles: frozenset[str], scopes: frozenset[str], kind: str) -> bool:
        """Whether a live session of `kind` with `roles` and `scopes` passes this rule."""
        if self.kinds and kind not in self.kinds:
            return False
        if self.roles and self.roles.isdisjoint(roles):
            return False
        return self.scopes <= scopes


def _under(path: str, prefix: str) -> bool:
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix + "/")


#: Without a policy file every request needs a live session.
DEFAULT_RULE = Rule(name="default", access=Access.AUTHENTICATED)


class Policy:
    """Rules in file order; `by_name` serves the rule nginx names with X-Authgate-Policy."""

    __slots__ = ("by_name", "rules")

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self.by_name: Mapping[str, Rule] = {rule.name: rule for rule in rules}

    def select(self, host: str, path: str, method: str) -> Rule | None:
        """The first rule matching the request, or None (which means deny)."""
        for rule in self.rules:
            if rule.matches(host, path, method):
                return rule
        return None


DEFAULT_POLICY = Policy(rules=(DEFAULT_RULE,))


class PolicyError(ValueError):
    """A policy file that can't be used; `problems` name each place (`rules[2].paths[0]`)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def load_policy(path: str) -> Policy:
    """Read and compile a rules file, reporting every problem at once."""
    try:
        document = read_yaml(path)
    except ConfigError as exc:
        raise PolicyError(exc.problems) from exc
    return compile_policy(document)


def compile_policy(document: Any) -> Policy:
    problems: list[str] = []
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise PolicyError(["the file must be a mapping with a list under `rules`"])
    unknown_top = set(document) - {"rules"}
    if unknown_top:
        problems.append(f"unknown top-level keys: {', '.join(sorted(map(str, unknown_top)))}")
    rules: list[Rule] = []
    names: set[str] = set()
    for index, raw in enumerate(document["rules"]):
        rule = _compile_rule(f"rules[{index}]", raw, problems)
        if rule is None:
            continue
        if rule.name in names:
            problems.append(f"rules[{index}].name: {rule.name!r} is used by an earlier rule")
        names.add(rule.name)
        rules.append(rule)
    if not document["rules"]:
        problems.append("rules: the list is empty, so every request would be denied")
    if problems:
        raise PolicyError(problems)
    return Policy(rules=tuple(rules))


RULE_KEYS = {"name", "hosts", "paths", "methods", "policy", "roles", "scopes", "kind"}


def _compile_rule(where: str, raw: Any, problems: list[str]) -> Rule | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    start = len(problems)
    for key in sorted(set(map(str, raw)) - RULE_KEYS):
        problems.append(f"{where}.{key}: unknown key")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
        problems.append(f"{where}.name: required; 1-64 of letters, digits, _ . : -")
    try:
        access = Access(raw.get("policy"))
    except ValueError:
        problems.append(f"{where}.policy: must be one of public, authenticated, deny")
        access = Access.DENY
    hosts = _strings(f"{where}.hosts", raw.get("hosts"), problems)
    exact, suffixes = set(), []
    for i, host in enumerate(hosts):
        host = host.lower()
        if host.startswith("*."):
            if not _valid_host(host[2:]):
                problems.append(f"{where}.hosts[{i}]: {host!r} is not a host name")
            suffixes.append(host[1:])
        elif _valid_host(host):
            exact.add(host)
        else:
            problems.append(f"{where}.hosts[{i}]: {host!r} is not a host name or *.wildcard")
    prefixes, regexes = [], []
    for i, path in enumerate(_strings(f"{where}.paths", raw.get("paths"), problems)):
        if path.startswith("~"):
            try:
                regexes.append(re.compile(path[1:].strip()))
            except re.error as exc:
                problems.append(f"{where}.paths[{i}]: bad regular expression: {exc}")
        elif path.startswith("/"):
            prefixes.append(path.rstrip("/") or "/")
        else:
            problems.append(f"{where}.paths[{i}]: {path!r} must start with / (or ~ for a regex)")
    methods = [m.upper() for m in _strings(f"{where}.methods", raw.get("methods"), problems)]
    for i, method in enumerate(methods):
        if not HTTP_METHOD.match(method):
            problems.append(f"{where}.methods[{i}]: {method!r} is not an HTTP method")
    roles = _strings(f"{where}.roles", raw.get("roles"), problems)
    scopes = _strings(f"{where}.scopes", raw.get("scopes"), problems)
    kind = raw.get("kind")
    if kind is not None and kind not in KINDS:
        problems.append(f"{where}.kind: must be one of {', '.join(sorted(KINDS))} (absent: both)")
    kinds = frozenset({kind}) if isinstance(kind, str) and kind in KINDS else frozenset()
    if access is not Access.AUTHENTICATED and (roles or scopes or kind is not None):
        problems.append(f"{where}: roles, scopes and kind apply only to policy: authenticated")
    if len(problems) > start:
        return None
    return Rule(
        name=str(name),
        access=access,
        exact_hosts=frozenset(exact),
        host_suffixes=tuple(suffixes),
        prefixes=tuple(prefixes),
        regexes=tuple(regexes),
        methods=frozenset(methods),
        roles=frozenset(roles),
        scopes=frozenset(scopes),
        kinds=kinds,
    )


def _strings(where: str, value: Any, problems: list[str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(f"{where}: must be a list of non-empty strings")
        return []
    return list(value)


def _valid_host(host: str) -> bool:
    return bool(re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", host))
