"""Reading the session cookie: one rule for the verifier and the issuer.

A request may carry a cookie name more than once: RFC 6265 §5.4 leaves their order to the
user agent, and a cookie set for a parent or sibling domain (or a shorter path) can sit
beside ours. Taking the first or the last is a guess an attacker can steer, so neither
side guesses: the same name twice with different values is ambiguous, and refused.
"""

from __future__ import annotations


class AmbiguousCookie(ValueError):
    """The cookie came more than once, with different values."""


def find_cookie(header: str, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header (quotes removed); None when absent
    or empty; AmbiguousCookie when it appears with two different values."""
    prefix = name + "="
    found: str | None = None
    for part in header.split(";"):
        part = part.strip()
        if part.startswith(prefix):
            value = part[len(prefix) :].strip().strip('"')
            if found is not None and value != found:
                raise AmbiguousCookie(f"cookie {name} sent more than once")
            found = value
    return found or None
