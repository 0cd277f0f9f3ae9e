"""Kong's plugin schema language, the part plugins use: check a `config` against a `Schema`.

A kong-pdk plugin declares `Schema` as a list of one-key dicts, `{"name": {field}}`, each
field with a `type` (string, number, integer, boolean, array, set, map, record) and
validators (`required`, `default`, `one_of`, `between`, `gt`, `len_min`, `len_max`,
`elements`, `keys`, `values`, `fields`). Kong checks a plugin's config against it when
the config loads; `authgate-gateway validate` and `serve` do the same, so a typo fails
here rather than in production.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, cast

Problem = tuple[str, str]  # (path, message)

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "set": (list,),
    "map": (dict,),
    "record": (dict,),
}


def fields_of(schema: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """The schema's fields by name, in order; a malformed schema is a plugin bug."""
    fields: dict[str, dict[str, Any]] = {}
    for entry in schema:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise TypeError(f"schema entries are one-key dicts, got {entry!r}")
        ((name, field),) = entry.items()
        fields[name] = field
    return fields


def check_record(
    schema: Sequence[Any], value: Any, path: str
) -> tuple[dict[str, Any], list[Problem]]:
    """Value with defaults filled in, and every problem found (paths rooted at `path`)."""
    return _record(fields_of(schema), value, path)


def _record(
    fields: dict[str, dict[str, Any]], value: Any, path: str
) -> tuple[dict[str, Any], list[Problem]]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return {}, [(path, "expected a record (a mapping)")]
    problems: list[Problem] = [
        (f"{path}.{name}", "unknown field") for name in value if name not in fields
    ]
    out: dict[str, Any] = {}
    for name, field in fields.items():
        where = f"{path}.{name}"
        if value.get(name) is None:
            if "default" in field:
                out[name] = copy.deepcopy(field["default"])
            elif field.get("type") == "record":
                out[name], found = _record(fields_of(field.get("fields", [])), None, where)
                problems += found
            elif field.get("required"):
                problems.append((where, "required field missing"))
            else:
                out[name] = None
            continue
        out[name], found = _field(field, value[name], where)
        problems += found
    return out, problems


def _field(field: dict[str, Any], value: Any, path: str) -> tuple[Any, list[Problem]]:
    kind = field.get("type", "string")
    allowed = _TYPES.get(kind)
    if allowed is None:
        raise TypeError(f"unknown schema type {kind!r} at {path}")
    # YAML and JSON booleans are not numbers, whatever Python's bool subclassing says.
    if not isinstance(value, allowed) or (kind != "boolean" and isinstance(value, bool)):
        return value, [(path, f"expected a {kind}")]
    if kind == "record":
        return _record(fields_of(field.get("fields", [])), value, path)
    problems: list[Problem] = []
    if kind in ("array", "set"):
        elements = field.get("elements", {"type": "string"})
        items: list[Any] = []
        for i, item in enumerate(cast("list[Any]", value)):
            checked, found = _field(elements, item, f"{path}[{i}]")
            items.append(checked)
            problems += found
        value = items
    if kind == "map":
        for key, item in value.items():
            problems += _field(field.get("keys", {"type": "string"}), key, f"{path}.{key}")[1]
            problems += _field(field.get("values", {"type": "string"}), item, f"{path}.{key}")[1]
    return value, problems + _validators(field, value, path)


def _validators(field: dict[str, Any], value: Any, path: str) -> list[Problem]:
    problems: list[Problem] = []
    if "one_of" in field and value not in field["one_of"]:
        choices = ", ".join(map(str, field["one_of"]))
        problems.append((path, f"expected one of: {choices}"))
    if "between" in field:
        low, high = field["between"]
        if not low <= value <= high:
            problems.append((path, f"value should be between {low} and {high}"))
    if "gt" in field and not value > field["gt"]:
        problems.append((path, f"value must be greater than {field['gt']}"))
    if "len_min" in field and len(value) < field["len_min"]:
        problems.append((path, f"length must be at least {field['len_min']}"))
    if "len_max" in field and len(value) > field["len_max"]:
        problems.append((path, f"length must be at most {field['len_max']}"))
    return problems
