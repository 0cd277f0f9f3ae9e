"""Child processes that never outlive the command that started them.

Each child runs in a session of its own (a Ctrl-C in the terminal reaches only the
command, which then stops its children in order), asks the kernel for SIGTERM should the
command die without cleaning up (PR_SET_PDEATHSIG), and is stopped with its whole process
group: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType

_PR_SET_PDEATHSIG = 1
# Looked up once, here: between fork and exec the child only makes the call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


#: The signals a command turns into clean-up (`stop_on_signals`).
_STOPPING = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


def _child_setup(mask: set[int | signal.Signals]) -> Callable[[], None]:
    def setup() -> None:
        # The signal comes when the *thread* that started the child ends: children are
        # started from the main thread only.
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # the child's own, unblocked

    return setup


class Child:
    """One process; `start()` starts it, `stop()` ends it and everything in its process
    group. Register the stop before the start: a stop signal that arrives while the
    process is being started is held until it is recorded here, so it is always stopped.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.argv, self.log_path, self.stop_signal = list(argv), log, stop_signal
        self.env, self.cwd = env, cwd
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.argv[0]} was not started")
        return self.process.pid

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Held, not lost: a SIGTERM that came between fork and the assignment below would
        # otherwise unwind the command while this process runs on unrecorded.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
        try:
            with self.log_path.open("wb") as out:  # one run's log: a new start begins anew
                self.process = subprocess.Popen(
                    self.argv,
                    env=dict(self.env) if self.env is not None else None,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_child_setup(mask),
                )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll `ready` until true; raise, with the tail of the log, if the process exits
        first or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise StartFailed(f"{what} exited with {code}", self.log_tail())
            if time.monotonic() > deadline:
                raise StartFailed(f"{what} not ready after {timeout:.0f} s", self.log_tail())
            time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 15) -> None:
        """End the process group: the stop signal, then SIGKILL after `grace` seconds.
        Nothing to do if it was never started."""
        if self.process is None:
            return
        _signal_group(self.pid, self.stop_signal)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(self.pid, signal.SIGKILL)
            self.process.wait()
        # Anything the leader left in its group (helpers, forked workers) goes with it.
        deadline = time.monotonic() + grace
        while _group_alive(self.pid) and time.monotonic() < deadline:
            _signal_group(self.pid, signal.SIGTERM)
            time.sleep(0.05)
        _signal_group(self.pid, signal.SIGKILL)


class StartFailed(RuntimeError):
    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(message + (f"\n{log_tail}" if log_tail else ""))


def _signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class Stopped(BaseException):
    """Raised in the main thread when SIGTERM (or SIGHUP) arrives, so that every `with`
    block unwinds and stops what it started, exactly as for Ctrl-C. A BaseException, as
    KeyboardInterrupt is: code that takes any failure for an answer (`except Exception`
    in a readiness probe) must not take the stop for one."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP become `Stopped`, SIGINT stays KeyboardInterrupt; once one has
    arrived, further ones are ignored so that the clean-up itself is not interrupted."""
    caught = tuple(_STOPPING)

    def handler(signum: int, frame: FrameType | None) -> None:
        for each in caught:
            signal.signal(each, signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(signum)

    previous = {each: signal.signal(each, handler) for each in caught}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def run_stoppable(main: Callable[[], int | None], name: str) -> int:
    """`main()` under `stop_on_signals`: its exit status, or 128 + the signal's number
    once a signal has unwound it (everything it started stopped on the way)."""
    with stop_on_signals():
        try:
            return main() or 0
        except KeyboardInterrupt:
            signum = signal.SIGINT
        except Stopped as stopped:
            signum = signal.Signals(stopped.signum)
        except StartFailed as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return 1
    print(f"{name}: {signum.name}: stopped, and so is everything it started", file=sys.stderr)
    return 128 + signum


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nothing listens on now (held open together while chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """Poll until something accepts on 127.0.0.1:`port` (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not listening(port):
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")
        time.sleep(0.02)
