"""The README's main command works: bin/demo starts the stack and its sample requests pass."""

from __future__ import annotations

import subprocess

from .harness import REPO


def test_bin_demo_check() -> None:
    result = subprocess.run(
        [str(REPO / "bin" / "demo"), "--check", "--nginx-port", "0", "--verifier-port", "0", "--upstream-port", "0", "--issuer-port", "0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" ok\n") == 7  # six requests and a browser sign-up
    assert "WRONG" not in result.stdout
