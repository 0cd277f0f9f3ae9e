"""`--workers N` for the verifier's own server: N processes, each listening on the same
port with SO_REUSEPORT, so the kernel spreads connections over them and no process
hands sockets to another.

The parent forks the workers before any event loop exists, then only supervises: a
worker that dies is started again; one that dies within its first seconds (it could not
listen, say) stops them all with an error. SIGTERM or SIGINT to the parent is passed to
every worker, which finishes what it was asked and exits (verifier/server.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable

log = logging.getLogger("authgate.verifier")

#: A worker that exits sooner than this after its start failed to start.
START_WINDOW = 3.0


def supervise(count: int, work: Callable[[], int]) -> int:
    """Run `work` in `count` forked processes until a stop signal; the exit code."""
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            _signal(pid, signal.SIGTERM)

    workers: dict[int, float] = {}  # pid -> started at
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    failed = False
    for _ in range(count):
        pid, started = _fork(work), time.monotonic()
        workers[pid] = started
    while workers:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid not in workers:
            continue
        started = workers.pop(pid)
        if stopping:
            continue
        code = os.waitstatus_to_exitcode(status)
        if time.monotonic() - started < START_WINDOW:
            log.error("verifier worker %d failed to start (exit %d): stopping", pid, code)
            failed = stopping = True
            for other in workers:
                _signal(other, signal.SIGTERM)
            continue
        log.error("verifier worker %d exited (%d): starting another", pid, code)
        workers[_fork(work)] = time.monotonic()
    return 1 if failed else 0


def _fork(work: Callable[[], int]) -> int:
    pid = os.fork()
    if pid == 0:  # the worker: default signal handling, then serve
        code = 1
        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            code = work()
        except BaseException:
            log.exception("verifier worker failed")
        finally:
            os._exit(code)
    return pid


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
