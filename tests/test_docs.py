"""The docs stay true to the code: every setting documented with its default."""

from __future__ import annotations

from verifier.settings import OPTIONS

from .harness import REPO


def test_every_verifier_setting_is_documented_with_its_default() -> None:
    text = (REPO / "docs" / "verifier.md").read_text()
    for option in OPTIONS:
        row = next(
            (line for line in text.splitlines() if line.startswith(f"| `{option.env}` |")), None
        )
        assert row is not None, f"{option.env} missing from docs/verifier.md"
        assert f"`{option.flag}`" in row
        if option.default:
            assert f"`{option.default}`" in row, option.env
