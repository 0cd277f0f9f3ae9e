"""Hosts and targets as Kong 3.9.1 accepts them (kong/tools/ip.lua, kong/db/schema/typedefs.lua).

Kong sorts an address by its colons and digits (ip.lua:121-130: two or more colons is IPv6,
only digits and dots is IPv4, anything else a name), then checks it by that kind: IPv4 as
four decimal octets (ip.lua:136-161), IPv6 bracketed or bare (ip.lua:167-218), a name as
ASCII letters, digits, `-`, `.` and `_` with no label ending in `-` and no empty label but a
trailing one (ip.lua:224-250). Each kind may carry `:port` up to 65535. Names are compared as
written: Kong does not lowercase them (ip.lua:262, "a name will not be normalized").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IPV4 = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?::(\d+))?\Z", re.ASCII)
_IPV6_GROUPS = re.compile(r"^(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\Z")
_NAME = re.compile(r"^[0-9A-Za-z._-]+\Z")
_PORT = re.compile(r":(\d+)\Z", re.ASCII)


@dataclass(frozen=True)
class Address:
    kind: str  # "ipv4", "ipv6" or "name"
    host: str
    port: int | None


class AddressError(ValueError):
    """Not an address Kong accepts; `str(exc)` is Kong's reason."""


def kind(text: str) -> str:
    """ip.lua:121-130 (`hostname_type`): by the colons, then the characters left."""
    if text.count(":") > 1:
        return "ipv6"
    if re.fullmatch(r"[\d.]+", text.replace(":", ""), re.ASCII):
        return "ipv4"
    return "name"


def parse(text: str) -> Address:
    """ip.lua:265 (`normalize_ip`): the address with its optional port, or AddressError."""
    found = kind(text)
    if found == "ipv4":
        return _ipv4(text)
    if found == "ipv6":
        return _ipv6(text)
    return _name(text)


def _port(digits: str) -> int:
    port = int(digits)
    if port > 65535:
        raise AddressError("invalid port number")
    return port


def _ipv4(text: str) -> Address:
    match = _IPV4.match(text)
    if match is None or any(int(octet) > 255 for octet in match.groups()[:4]):
        raise AddressError(f"invalid ipv4 address: {text}")
    port = _port(match[5]) if match[5] else None
    return Address("ipv4", ".".join(str(int(o)) for o in match.groups()[:4]), port)


def _ipv6(text: str) -> Address:
    port: int | None = None
    check = text
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise AddressError(f"invalid ipv6 address: {text}")
        check, rest = text[1:close], text[close + 1 :]
        if rest:
            if not re.fullmatch(r":\d*", rest, re.ASCII):
                raise AddressError("invalid ipv6 address")
            port = _port(rest[1:] or "0")
    if check.startswith(":"):
        check = "0" + check
    if check.endswith(":"):
        check += "0"
    if "::" in check:
        check = check.replace("::", ":" + "0:" * (8 - check.count(":")), 1)
    if not _IPV6_GROUPS.match(check):
        raise AddressError(f"invalid ipv6 address: {text}")
    return Address("ipv6", ":".join(g.zfill(4) for g in check.lower().split(":")), port)


def _name(text: str) -> Address:
    name, port = text, None
    found = _PORT.search(text)
    if found:
        name, port = text[: found.start()], _port(found[1])
    if not _NAME.match(name):
        raise AddressError(f"invalid hostname: {text}")
    labels = name.split(".")
    for index, label in enumerate(labels):
        if label.endswith("-") or (label == "" and index != len(labels) - 1):
            raise AddressError(f"invalid hostname: {text}")
    return Address("name", name, port)


def service_host(text: str) -> str | None:
    """typedefs.lua:24-35: a service's host, which may not carry a port; the error or None."""
    try:
        address = parse(text)
    except AddressError as exc:
        if str(exc) == "invalid port number":
            return "must not have a port"
        return f"invalid value: {text}"
    return "must not have a port" if address.port is not None else None


def route_host(text: str) -> str | None:
    """typedefs.lua:575-601 and 495-498: one wildcard at most, as the first or last label,
    then the host (with `*` read as `abc`) with an optional port; the error or None."""
    stars = text.count("*")
    if stars > 1:
        return "invalid wildcard: must have at most one wildcard"
    if stars and not (text.startswith("*.") or text.endswith(".*")):
        return "invalid wildcard: must be placed at leftmost or rightmost label"
    try:
        parse(text.replace("*", "abc"))
    except AddressError as exc:
        return str(exc)
    return None


def upstream_name(text: str) -> str | None:
    """upstreams.lua:18-31: a hostname, neither an IP nor with a port; the error or None."""
    try:
        address = parse(text)
    except AddressError:
        return f"Invalid name ('{text}'); must be a valid hostname"
    if address.kind != "name":
        return f"Invalid name ('{text}'); no ip addresses allowed"
    if address.port is not None:
        return f"Invalid name ('{text}'); no port allowed"
    return None


def target(text: str) -> Address | str:
    """targets.lua:7-18: the target's address (its port None when not given), or the error."""
    try:
        return parse(text)
    except AddressError:
        return f"Invalid target ('{text}'); not a valid hostname or ip address"
