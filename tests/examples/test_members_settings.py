"""The member service's start: bad settings refused together (exit 2), and the boundary
that makes it an example: it imports nothing from authgate's own packages."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from examples.members.settings import OPTIONS, amqp_urls, load, redact_url

from .members import ROOT

FORBIDDEN = {"authgate", "verifier", "issuer", "gateway", "plugins", "stack"}


def run(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEMBERS_")}
    return subprocess.run(
        [sys.executable, "-m", "examples.members", *argv], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_every_bad_setting_is_listed_and_the_exit_is_2(tmp_path: Path) -> None:
    result = run(
        "--port", "http", "--amqp-url", "http://guest:hunter2@rabbit/",
        MEMBERS_HOST="", MEMBERS_DB=str(tmp_path), MEMBERS_EXCHANGE="two words",
        MEMBERS_QUEUE="amq.mine",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == 6, result.stderr
    for where in ("--port", "--amqp-url", "MEMBERS_HOST", "MEMBERS_DB", "MEMBERS_EXCHANGE",
                  "MEMBERS_QUEUE"):  # fmt: skip
        assert any(line.startswith(f"  - {where}=") for line in problems), where
    assert "hunter2" not in result.stderr


def test_flags_win_over_the_environment() -> None:
    result = run("--port", "70000", MEMBERS_PORT="8081")
    assert result.returncode == 2
    assert "--port='70000'" in result.stderr and "MEMBERS_PORT" not in result.stderr


def test_help_names_every_variable_and_default() -> None:
    result = run("--help")
    assert result.returncode == 0
    for text in ("MEMBERS_HOST", "MEMBERS_PORT", "MEMBERS_DB", "run/members.db",
                 "MEMBERS_AMQP_URL", "MEMBERS_EXCHANGE", "authgate.events", "MEMBERS_QUEUE",
                 "members.user-deleted"):  # fmt: skip
        assert text in result.stdout


def test_an_unopenable_store_exits_1(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = run("--port", "1", MEMBERS_DB=str(tmp_path / "file" / "members.db"))
    assert result.returncode == 1
    assert "cannot open" in result.stderr


def test_imports_nothing_from_authgate() -> None:
    for path in (ROOT / "examples").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path}: imports {name}"


def test_the_readme_lists_every_setting_with_its_default() -> None:
    rows = (ROOT / "examples" / "members" / "README.md").read_text().splitlines()
    for option in OPTIONS:
        row = next((r for r in rows if r.startswith(f"| `{option.flag}` | `{option.env}` |")), None)
        assert row is not None, f"{option.env} missing from examples/members/README.md"
        assert f"`{option.default}`" in row, option.env


def test_one_amqp_url_per_cluster_node_and_every_password_redacted() -> None:
    urls = "amqp://u:hunter2@rabbit-1:5672/, amqp://u:hunter2@rabbit-2:5672/"
    settings = load(["--amqp-url", urls], {})
    assert amqp_urls(settings.amqp_url) == (
        "amqp://u:hunter2@rabbit-1:5672/",
        "amqp://u:hunter2@rabbit-2:5672/",
    )
    assert (
        redact_url(settings.amqp_url) == "amqp://u:***@rabbit-1:5672/,amqp://u:***@rabbit-2:5672/"
    )
    result = run("--amqp-url", "amqp://u:hunter2@rabbit-1/,http://u:hunter2@rabbit-2/")
    assert result.returncode == 2
    assert "--amqp-url=" in result.stderr and "hunter2" not in result.stderr
