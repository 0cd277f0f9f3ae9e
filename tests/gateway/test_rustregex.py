"""Route regexes in Kong's dialect (Rust's `regex`, kong/router/transform.lua:296-303)."""

from __future__ import annotations

import pytest

from gateway.rustregex import RegexError, translate


@pytest.mark.parametrize(
    ("path", "matches", "misses"),
    [
        ("~/users/(?<id>\\d+)$", ["/users/42"], ["/users/42\n", "/users/x"]),
        ("~/users/(?P<id>\\d+)", ["/users/42/x"], ["/x/users/42"]),  # anchored at the start
        ("~/(?i)abc|/x", ["/ABC", "/X"], ["/y"]),  # (?i) reaches the later alternative
        ("~/\\w+$", ["/héllo", "/a\u0301"], ["/a-b"]),  # Rust's \w has marks
        ("~/\\s", ["/\u2028"], ["/\x1c"]),  # Rust's \s is White_Space; Python's has \x1c
        ("~/\\pL+$", ["/Конг"], ["/42"]),
        ("~/a\\z", ["/a"], ["/a\n"]),
        ("~/[[:digit:]]{2,3}?$", ["/12", "/123"], ["/1"]),
    ],
)
def test_matches_as_rust_does(path: str, matches: list[str], misses: list[str]) -> None:
    regex = translate(path)
    assert all(regex.match(p) for p in matches)
    assert not any(regex.match(p) for p in misses)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("~/(?=a)", "look-around"),
        ("~/(?!a)", "look-around"),
        ("~/(?<=a)b", "look-around"),
        ("~/(?<!a)b", "look-around"),
        ("~/(a)\\1", "back-references"),
        ("~/(?P<n>a)(?P<n>b)", "duplicate"),
        ("~/a{,3}", "repetition"),
        ("~/a|*b", "missing expression"),
        ("~/\\u0041", "PCRE"),
        ("~/[a&&b]", "not supported here"),
        ("~/\\p{Greek}", "not supported here"),
        ("~/(", "unclosed"),
    ],
)
def test_refused(path: str, reason: str) -> None:
    with pytest.raises(RegexError, match=reason):
        translate(path)
