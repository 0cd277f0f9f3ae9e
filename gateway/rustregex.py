r"""Route regexes in Kong 3.9's dialect: Rust's `regex` crate, checked and made Python `re`.

Kong's `traditional_compatible` router hands each `~` path to the ATC router as
`"^" .. path:sub(2):gsub("?<", "?P<")` (kong/router/transform.lua:296-303 at 3.9.1), which
compiles it with Rust's `regex` crate; the schema also dry-runs the path with PCRE
(kong/db/schema/typedefs.lua:516-523). So a route regex must be valid in both. Rust's
syntax has no look-around and no back-references, and differs from Python's where it
matters for routing:

- `$` (without `m`) matches only at the very end, never before a final `\n` (Python's does):
  it becomes `\Z`; `^` becomes `\A`, `\z` becomes `\Z`.
- `\w`, `\s`, `\b` and `\p{..}` are Unicode classes with Rust's definitions (UTS #18
  Annex C), written out as explicit ranges.
- Flags (`i m s U x`) are scoped to the rest of the enclosing group, including later
  alternatives; each atom is emitted with its own flags, so that scope is kept exactly.

What is not translated is refused with a message naming it, so `validate` never passes a
regex that `serve` would match differently from Kong.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from functools import cache


class RegexError(ValueError):
    """Not a route regex Kong accepts (or not one `serve` can match as Kong does)."""


@dataclass(frozen=True)
class Flags:
    i: bool = False
    m: bool = False
    s: bool = False
    U: bool = False
    x: bool = False


def kong_pattern(path: str) -> str:
    """The pattern Kong's router compiles for the route path `path` (which starts with `~`)."""
    return "^" + path[1:].replace("?<", "?P<")


def translate(path: str) -> re.Pattern[str]:
    """The compiled Python equivalent of the route path `path` (`~…`), or RegexError."""
    return re.compile(_Parser(kong_pattern(path)).parse())


_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": r"\x00-\x7f", "blank": r"\t ",
    "cntrl": r"\x00-\x1f\x7f", "digit": "0-9", "graph": r"!-~", "lower": "a-z",
    "print": r" -~", "punct": r"!-/:-@\[-`{-~", "space": r"\t\n\v\f\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}  # fmt: skip
_HEX = re.compile(r"\{([0-9A-Fa-f]{1,8})\}|([0-9A-Fa-f]{2})")
_PROPERTY = re.compile(r"\{\s*(\^?)([A-Za-z_ ]+)\s*\}|([A-Za-z])")
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a"}
# Unicode White_Space (PropList.txt), Rust's `\s`.
_SPACE = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Other_Alphabetic outside the marks (PropList.txt): the circled and squared letters.
_OTHER_ALPHA = r"\u24b6-\u24e9\U0001f130-\U0001f149\U0001f150-\U0001f169\U0001f170-\U0001f189"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos, self.flags, self.names = text, 0, Flags(), set[str]()

    def fail(self, message: str) -> RegexError:
        return RegexError(f"{message} (at offset {self.pos} of the pattern Kong compiles)")

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.text[index] if index < len(self.text) else ""

    def parse(self) -> str:
        out = self.alternation()
        if self.pos < len(self.text):
            raise self.fail("unopened group")
        return out

    def alternation(self) -> str:
        saved = self.flags
        branches = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.sequence())
        self.flags = saved
        return "|".join(branches)

    def sequence(self) -> str:
        parts: list[str] = []
        while True:
            self.skip_verbose()
            char = self.peek()
            if char in ("", "|", ")"):
                return "".join(parts)
            if char in "*+?{":
                raise self.fail("repetition operator missing expression")
            atom = self.atom()
            if atom is None:
                continue  # a flag group: it changed self.flags for what follows
            parts.append(self.repetition(atom))

    def skip_verbose(self) -> None:
        while self.flags.x and self.peek() and (self.peek().isspace() or self.peek() == "#"):
            if self.peek() == "#":
                while self.peek() not in ("", "\n"):
                    self.pos += 1
            else:
                self.pos += 1

    def repetition(self, atom: str) -> str:
        self.skip_verbose()
        char = self.peek()
        if char in ("*", "+", "?"):
            self.pos += 1
            quantifier = char
        elif char == "{":
            found = re.compile(r"\{(\d+)(,(\d*))?\}").match(self.text, self.pos)
            if found is None:
                raise self.fail("invalid repetition (Rust reads `{` only as {n}, {n,} or {n,m})")
            low, high = int(found[1]), found[3]
            if (high and int(high) < low) or max(low, int(high or 0)) > 1000:
                raise self.fail("invalid repetition range")
            self.pos = found.end()
            quantifier = found[0]
        else:
            return atom
        lazy = self.peek() == "?"
        if lazy:
            self.pos += 1
        if self.peek() and self.peek() in "*+?{":
            raise self.fail("a repeated repetition is not supported here")
        return f"(?:{atom}){quantifier}" + ("?" if lazy != self.flags.U else "")

    def scoped(self, body: str, *, case: bool = True) -> str:
        """`body` under the current `i` flag (the only one Python needs per atom)."""
        return f"(?i:{body})" if case and self.flags.i else body

    def atom(self) -> str | None:
        char = self.peek()
        self.pos += 1
        if char == "(":
            return self.group()
        if char == "[":
            return self.scoped(self.char_class())
        if char == "\\":
            return self.escape()
        if char == ".":
            return "(?s:.)" if self.flags.s else "."
        if char == "^":
            return "(?m:^)" if self.flags.m else r"\A"
        if char == "$":
            return "(?m:$)" if self.flags.m else r"\Z"
        return self.scoped(re.escape(char))

    def group(self) -> str | None:
        if self.peek() != "?":
            body = self.alternation()
            return self.close(f"({body})")
        self.pos += 1
        head = self.peek()
        if head == "P" and self.peek(1) == "<" and self.peek(2) not in ("=", "!"):
            self.pos += 2
            return self.named()
        if head in ("=", "!") or self.text.startswith(("P<=", "P<!", "<=", "<!"), self.pos):
            raise self.fail("look-around is not supported (Rust's regex has none)")
        if head == "<":  # (?<name>…) after Kong's rewrite can only come from "?P<" itself
            self.pos += 1
            return self.named()
        found = re.compile(r"([a-zA-Z-]*)([:)])").match(self.text, self.pos)
        if found is None:
            raise self.fail("unrecognized group syntax")
        self.pos = found.end()
        flags = self.set_flags(found[1])
        if found[2] == ")":
            self.flags = flags
            return None
        saved, self.flags = self.flags, flags
        body = self.alternation()
        self.flags = saved
        return self.close(f"(?:{body})")

    def named(self) -> str:
        found = re.compile(r"([^>]*)>").match(self.text, self.pos)
        if found is None or not _NAME.fullmatch(found[1]):
            raise self.fail("invalid capture group name (letters, digits and _ only here)")
        if found[1] in self.names:
            raise self.fail(f"duplicate capture group name {found[1]!r}")
        self.names.add(found[1])
        self.pos = found.end()
        # Names only label Kong's uri_captures; serve matches with a plain group.
        return self.close(f"({self.alternation()})")

    def close(self, out: str) -> str:
        if self.peek() != ")":
            raise self.fail("unclosed group")
        self.pos += 1
        return out

    def set_flags(self, spec: str) -> Flags:
        values = dict(vars(self.flags))
        on = True
        for letter in spec:
            if letter == "-":
                on = False
            elif letter in values:
                values[letter] = on
            elif letter in "uR":
                raise self.fail(f"flag {letter!r} is not supported here")
            else:
                raise self.fail(f"unrecognized flag {letter!r}")
        return Flags(**values)

    def escape(self) -> str:
        char = self.peek()
        self.pos += 1
        if char == "":
            raise self.fail("incomplete escape sequence")
        if char.isdigit():
            raise self.fail("back-references are not supported (Rust's regex has none)")
        if char in "dDsSwWpP":
            self.pos -= 1
            return self.scoped(self.class_escape(), case=char in "pP")
        if char in "bB":
            word = f"[{_word()}]"
            at = f"(?:(?<={word})(?!{word})|(?<!{word})(?={word}))"
            return at if char == "b" else f"(?:(?<={word})(?={word})|(?<!{word})(?!{word}))"
        if char == "A":
            return r"\A"
        if char == "z":
            return r"\Z"
        return self.scoped(re.escape(self.literal_escape(char)))

    def literal_escape(self, char: str) -> str:
        if char in _SIMPLE:
            return _SIMPLE[char]
        if char == "x":
            found = _HEX.match(self.text, self.pos)
            if found is None:
                raise self.fail("invalid hexadecimal escape")
            self.pos = found.end()
            code = int(found[1] or found[2], 16)
            if code > sys.maxunicode or 0xD800 <= code <= 0xDFFF:
                raise self.fail("hexadecimal escape is not a Unicode scalar value")
            return chr(code)
        if char in "uU":
            raise self.fail(f"\\{char} escapes are refused by PCRE, which Kong also checks with")
        if char.isascii() and not char.isalnum() and char not in "<>":
            return char  # Rust accepts any escaped ASCII punctuation as itself
        raise self.fail(f"unrecognized escape sequence \\{char}")

    def class_escape(self) -> str:
        """`\\d \\s \\w \\p{..}` and their negations, as a bracketed Python class."""
        char = self.peek()
        self.pos += 1
        if char in "pP":
            found = _PROPERTY.match(self.text, self.pos)
            if found is None:
                raise self.fail("invalid Unicode class")
            self.pos = found.end()
            negate = (char == "P") != bool(found[1])
            return ("[^" if negate else "[") + _category(found[2] or found[3], self) + "]"
        body = {"d": r"\d", "s": _SPACE, "w": _word()}[char.lower()]
        return ("[^" if char.isupper() else "[") + body + "]"

    def char_class(self) -> str:
        negate = self.peek() == "^"
        if negate:
            self.pos += 1
        items: list[str] = []
        first = True
        while True:
            char = self.peek()
            if char == "":
                raise self.fail("unclosed character class")
            if char == "]" and not first:
                self.pos += 1
                break
            first = False
            if char == "[" and self.peek(1) == ":":
                items.append(self.posix())
                continue
            if char == "[" or self.text.startswith(("&&", "--", "~~"), self.pos):
                raise self.fail("nested classes and class set operations are not supported here")
            low = self.class_char()
            if low is None:
                items.append(self.class_escape()[1:-1])
                continue
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.pos += 1
                high = self.class_char()
                if high is None or ord(high) < ord(low):
                    raise self.fail("invalid character class range")
                items.append(f"{_escape(low)}-{_escape(high)}")
            else:
                items.append(_escape(low))
        if not items:
            raise self.fail("empty character class")
        return ("[^" if negate else "[") + "".join(items) + "]"

    def class_char(self) -> str | None:
        """One literal in a class, or None (position kept) for a class escape like `\\d`."""
        char = self.peek()
        self.pos += 1
        if char != "\\":
            return char
        if self.peek() in tuple("dDsSwWpP"):
            if self.peek() in "DSWP" or self.text.startswith(r"p{^", self.pos):
                raise self.fail("a negated class inside a class is not supported here")
            return None
        escaped = self.peek()
        self.pos += 1
        if escaped.isdigit():
            raise self.fail("back-references are not supported (Rust's regex has none)")
        return self.literal_escape(escaped)

    def posix(self) -> str:
        found = re.compile(r"\[:(\^?)([a-z]+):\]").match(self.text, self.pos)
        if found is None or found[2] not in _POSIX:
            raise self.fail("invalid POSIX class")
        if found[1]:
            raise self.fail("a negated POSIX class is not supported here")
        self.pos = found.end()
        return _POSIX[found[2]]


def _escape(char: str) -> str:
    return re.escape(char) if char.isascii() else f"\\U{ord(char):08x}"


_CATEGORY_NAMES = {"letter": "L", "mark": "M", "number": "N", "punctuation": "P",
                   "symbol": "S", "separator": "Z", "other": "C"}  # fmt: skip


def _category(name: str, parser: _Parser) -> str:
    key = name.replace(" ", "").replace("_", "")
    key = _CATEGORY_NAMES.get(key.lower(), key)
    if not re.fullmatch(r"[LMNPSZC][a-z]?", key) or key in ("Cs", "Cn", "C"):
        raise parser.fail(f"Unicode class {name!r} is not supported here (general categories only)")
    return _ranges(key)


@cache
def _runs() -> tuple[tuple[int, int, str], ...]:
    """(first, last, category) for each run of code points of one general category."""
    runs: list[tuple[int, int, str]] = []
    start, current = 0, unicodedata.category("\0")
    for code in range(1, sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        if category != current:
            runs.append((start, code - 1, current))
            start, current = code, category
    runs.append((start, sys.maxunicode, current))
    return tuple(runs)


@cache
def _ranges(prefix: str) -> str:
    """Ranges of the code points whose general category starts with `prefix`."""
    return "".join(
        f"\\U{a:08x}" + (f"-\\U{b:08x}" if b > a else "")
        for a, b, category in _runs()
        if category.startswith(prefix)
    )


@cache
def _word() -> str:
    """Rust's `\\w` (UTS #18 Annex C): Alphabetic, marks, decimal digits, connectors, ZWJ/ZWNJ."""
    alphabetic = "".join(_ranges(c) for c in ("Lu", "Ll", "Lt", "Lm", "Lo", "Nl"))
    joiners = r"\u200c\u200d"
    return alphabetic + _OTHER_ALPHA + _ranges("M") + _ranges("Nd") + _ranges("Pc") + joiners
