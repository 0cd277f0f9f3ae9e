"""The README's main command: bin/demo starts the whole stack, its walk of the whole path
passes, and it leaves nothing running, however it ends (done, Ctrl-C, SIGTERM, a start-up
that fails)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest

from ..harness import REPO
from ..polling import wait_until

# Every port free: a fixed one may be taken by another command on the machine.
FREE_PORTS = [f for name in ("nginx", "verifier", "upstream", "issuer", "gateway", "members")
              for f in (f"--{name}-port", "0")]  # fmt: skip


def test_bin_demo_check() -> None:
    result = subprocess.run(
        [str(REPO / "bin" / "demo"), "--check", *FREE_PORTS],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # Six requests, a browser sign-up, the member service's writes through the gateway
    # (create, replay, 422, 403), a service account (its token, /api/stats, a person
    # refused there, its token refused after suspension, within 100 ms), the account
    # deletion (its token refused, within 100 ms, her members gone, the event seen by
    # `events tail`).
    assert result.stdout.count(" ok\n") == 20, result.stdout
    assert "WRONG" not in result.stdout
    assert "replayed=true members=1 ok" in result.stdout
    assert "Redis: " in result.stderr and "RabbitMQ: " in result.stderr  # where each came from


def _descendants(pid: int) -> set[int]:
    """Every process below `pid`, by parent links in /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _listening_ports(pids: set[int]) -> set[int]:
    """TCP ports on which any of `pids` listens (read with ss)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    ports = set()
    for line in out.splitlines():
        if any(f"pid={pid}," in line for pid in pids):
            ports.add(int(line.split()[3].rsplit(":", 1)[1]))
    return ports


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_demo(extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "stack.demo", *FREE_PORTS],
        cwd=REPO, env={**env, **(extra_env or {})}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _read_until(demo: subprocess.Popen[str], marker: str, timeout: float = 120) -> str:
    assert demo.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    _abandon(demo)
    raise AssertionError(f"demo never printed {marker!r}:\n{''.join(seen)}")


@pytest.mark.parametrize(
    ("signum", "when"),
    [(signal.SIGTERM, "Ctrl-C stops the demo."), (signal.SIGINT, "Ctrl-C stops the demo."),
     (signal.SIGTERM, "Redis: ")],  # the last: half-way through start-up
    ids=["sigterm-running", "sigint-running", "sigterm-starting"],
)  # fmt: skip
def test_a_signal_stops_everything_the_demo_started(signum: int, when: str) -> None:
    demo = _start_demo()
    try:
        _read_until(demo, when)
        started = _descendants(demo.pid)
        ports = _listening_ports(started | {demo.pid})
        assert started, "the demo started nothing?"
        demo.send_signal(signum)
        out, _ = demo.communicate(timeout=90)
    finally:
        if demo.poll() is None:
            _abandon(demo)
    assert demo.returncode == 128 + signum, out
    wait_until(lambda: not any(_alive(pid) for pid in started), 15,
               lambda: f"still running: {[p for p in started if _alive(p)]}")  # fmt: skip
    assert not _listening_ports(started), ports
    still = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    reopened = {p for p in ports if f":{p} " in still}
    assert not reopened, f"ports the demo opened still listen: {reopened}"
    assert not _strays(), "left running"


def _abandon(demo: subprocess.Popen[str]) -> None:
    """SIGKILL a demo that did not stop by itself, and what it left running (its private
    RabbitMQ outlives it), so that one failure does not fail the tests after it too."""
    demo.kill()
    demo.wait()
    for pid in _strays():
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _strays() -> dict[int, str]:
    """Processes working in, or naming, the demo's run/ directory (its private Redis and
    RabbitMQ): found by what they are, not by whom they descend from, so one started in
    the instant of a signal, after any snapshot of the demo's children, is found too."""
    run = str(REPO / "run")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if _alive(int(entry.name)) and (cwd.startswith(run) or run in cmdline):
            found[int(entry.name)] = cmdline[:120]
    return found


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.1, 0.3, 1.0])
def test_a_signal_while_rabbitmq_is_starting_leaves_nothing(delay: float) -> None:
    """SIGTERM at moments spread over the start of the private RabbitMQ (its port mapper,
    then the node): whichever process was being started at that instant is stopped."""
    assert not _strays(), "left over before the test"
    demo = _start_demo()
    try:
        _read_until(demo, "Redis: ")
        time.sleep(delay)  # the moment of the signal is what varies
        demo.send_signal(signal.SIGTERM)
        out, _ = demo.communicate(timeout=90)
    finally:
        if demo.poll() is None:
            _abandon(demo)
    assert demo.returncode == 128 + signal.SIGTERM, out
    wait_until(lambda: not _strays(), 20, lambda: f"still running: {_strays()}")


def test_a_start_up_that_fails_half_way_stops_what_was_started() -> None:
    demo = _start_demo({"AUTHGATE_TOKEN_CACHE_SIZE": "-1"})  # the verifier refuses this
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while demo.poll() is None and time.monotonic() < deadline:
            started |= _descendants(demo.pid)
            time.sleep(0.05)
        out, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            _abandon(demo)
    assert demo.returncode == 1, out
    assert "verifier exited" in out and "token_cache_size" in out.lower(), out
    wait_until(lambda: not any(_alive(pid) for pid in started), 15,
               lambda: f"still running: {[p for p in started if _alive(p)]}")  # fmt: skip
