"""The one-machine commands' signal handling (stack/processes.py): a stop signal unwinds
whatever the command was doing, wherever it came."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from stack.processes import Stopped, stop_on_signals
from stack.services import amqp_problem


def test_a_stop_signal_during_a_probe_is_not_taken_for_its_answer() -> None:
    """SIGTERM while the RabbitMQ probe waits on a node that says nothing. The probe takes
    any failure to connect for its answer ("not up yet"); it must not take the stop for
    one (a SIGTERM there once went unheeded: the demo started everything and ran on)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts, and never speaks AMQP: the probe waits its timeout
        url = f"amqp://guest:guest@127.0.0.1:{silent.getsockname()[1]}/"
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
        began = time.monotonic()
        with stop_on_signals():
            timer.start()
            try:
                with pytest.raises(Stopped):
                    amqp_problem(url, timeout=5)
            finally:
                timer.cancel()
                timer.join()
        assert time.monotonic() - began < 4  # the stop ended the probe, not its timeout
