"""The docs stay true to the code: every setting documented with its default."""

from __future__ import annotations

import pytest

from authgate.config import Option
from issuer.settings import OPTIONS as ISSUER_OPTIONS
from verifier.settings import OPTIONS as VERIFIER_OPTIONS

from .harness import REPO


@pytest.mark.parametrize(
    ("doc", "options"), [("verifier.md", VERIFIER_OPTIONS), ("issuer.md", ISSUER_OPTIONS)]
)
def test_every_setting_is_documented_with_its_default(
    doc: str, options: tuple[Option, ...]
) -> None:
    text = (REPO / "docs" / doc).read_text()
    for option in options:
        row = next(
            (line for line in text.splitlines() if line.startswith(f"| `{option.env}` |")), None
        )
        assert row is not None, f"{option.env} missing from docs/{doc}"
        assert f"`{option.flag}`" in row
        if option.default:
            assert f"`{option.default}`" in row, option.env
