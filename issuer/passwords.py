"""Which passwords a local account may have: NIST SP 800-63B §5.1.1.2.

At least MIN_LENGTH characters (the guideline's floor is 8; ours was already 10) and up to
MAX_LENGTH (at least 64 must be allowed; argon2id hashes any length at the same cost).
No composition rules (§5.1.1.2 says not to impose them). Refused, with the reason told to
the person (§5.1.1.2: "the verifier SHALL advise the subscriber ... why"):

- a common or known-compromised password: the blocklist `data/common-passwords.txt`
  (shipped data, from zxcvbn's frequency list; see its header), compared case-blind, and
  a listed password with a few digits or symbols tacked on;
- repetitive or sequential characters ("aaaaaaaaaa", "1234567890", "qwertyuiop",
  "abcabcabc", a short string repeated);
- context-specific words: the email, its local part, the service's name.
"""

from __future__ import annotations

import itertools
import re
from functools import cache
from importlib import resources

MIN_LENGTH = 10
MAX_LENGTH = 1024
#: The service's names a password must not contain (§5.1.1.2 "context-specific words").
SERVICE_NAMES = ("authgate",)
#: Runs a keyboard or an alphabet walks; a password inside one (either way) is a sequence.
SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "qwertyuiop[]\\",
    "asdfghjkl;'",
    "zxcvbnm,./",
    "`1234567890-=",
    "qwertzuiop",
    "azertyuiop",
)
#: Fewer characters than this that a pattern can't predict (or fewer than a third of
#: them), and the password is a pattern.
MIN_SURPRISES = 4
_TAIL = re.compile(r"[^a-z]{1,4}$")


@cache
def blocklist() -> frozenset[str]:
    text = resources.files("issuer").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def problem(password: str, *, email: str, service: tuple[str, ...] = SERVICE_NAMES) -> str | None:
    """Why `password` may not be used, in words for the person; None when it may."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        return f"the password must be {MIN_LENGTH} to {MAX_LENGTH} characters"
    lowered = password.lower()
    unit = _repeated_unit(lowered)
    if unit is not None and len(unit) < MIN_LENGTH:
        return "the password repeats a short string; repeating does not make it stronger"
    surprises = _surprises(lowered)
    if surprises < MIN_SURPRISES or surprises * 3 < len(lowered):
        return "the password is a sequence (like 1234 or qwerty) or repeats characters"
    words = blocklist()
    if lowered in words or _TAIL.sub("", lowered) in words:
        return "this password is too common: it is on lists attackers try first"
    local = email.strip().lower().partition("@")[0]
    if email.strip().lower() in lowered or (len(local) >= 3 and local in lowered):
        return "the password must not contain your email address or its name part"
    if any(name in lowered for name in service):
        return "the password must not contain the name of this service"
    return None


def _repeated_unit(text: str) -> str | None:
    """The shortest string that, repeated, makes `text` ("abc" of "abcabc"), if any."""
    for size in range(1, len(text) // 2 + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return text[:size]
    return None


def _surprises(text: str) -> int:
    """The characters a guesser could not predict from the one before: not the same, not
    the next or previous in an alphabet or along a keyboard row."""
    count = 1
    for before, after in itertools.pairwise(text):
        if before == after or _adjacent(before, after):
            continue
        count += 1
    return count


def _adjacent(before: str, after: str) -> bool:
    pair = before + after
    return any(pair in run or pair in run[::-1] for run in SEQUENCES)
