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


def test_gateway_flags_and_plugin_config_are_documented() -> None:
    from gateway.cli import parser
    from gateway.plugins import find
    from gateway.schema import fields_of

    text = (REPO / "docs" / "gateway.md").read_text()
    flags = {
        action.option_strings[-1]
        for sub in [parser(), *parser()._subparsers._group_actions[0].choices.values()]  # type: ignore[union-attr]
        for action in sub._actions
        if action.option_strings and action.option_strings[-1].startswith("--")
    } - {"--help", "--output"}
    for flag in flags:
        env = "AUTHGATE_GATEWAY_" + flag[2:].upper().replace("-", "_")
        assert f"| `{env}` | `{flag}` |" in text, flag
    for name, field in fields_of(find("idempotency").schema).items():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"plugin config {name} missing from docs/gateway.md"
        default = field.get("default")  # a record (`redis`) has its defaults inside
        if default is not None and not isinstance(default, list):
            assert f"`{str(default).lower() if isinstance(default, bool) else default}`" in row


def test_every_security_invariant_names_tests_that_exist() -> None:
    """docs/security.md names the test behind each invariant: the files and the test
    functions it names must be there (renaming a test means updating the doc)."""
    import re

    text = (REPO / "docs" / "security.md").read_text()
    files = set(re.findall(r"tests/[\w/]+\.py", text))
    assert files, "no tests named?"
    for name in files:
        assert (REPO / name).is_file(), name
    sources = "\n".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py"))
    for test in set(re.findall(r"\b(test_\w+)(?![\w.])", text)):
        assert re.search(rf"def {test}\b", sources), f"docs/security.md names {test}, not found"
