"""Redis and RabbitMQ for the one-machine commands (stack/services.py): what answers is
used and left alone, the loopback default is started when nothing answers, and any other
URL that does not answer is one clear line, quickly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import ExitStack
from io import StringIO

import pytest

from stack.processes import free_port
from stack.services import (
    Setting,
    Unavailable,
    amqp_problem,
    is_loopback_default,
    provide,
    redis_problem,
)

from ..harness import REPO


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", True),
        ("redis://localhost:6379/3", True),
        ("redis://127.0.0.1/0", True),  # the port defaults to 6379
        ("redis://[::1]:6379/0", True),
        ("redis://127.0.0.1:6380/0", False),  # another port: someone else's to run
        ("redis://:secret@127.0.0.1:6379/0", False),  # a password we could not know
        ("rediss://127.0.0.1:6379/0", False),
        ("redis://redis.internal:6379/0", False),
    ],
)
def test_which_redis_urls_are_the_loopback_default(url: str, expected: bool) -> None:
    assert is_loopback_default(url, "redis", 6379) is expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", True),
        ("amqp://localhost", True),
        ("amqp://guest:guest@127.0.0.1:5672/other", False),  # a vhost we would not have
        ("amqp://app:pw@127.0.0.1:5672/", False),
        ("amqp://guest:guest@127.0.0.1:5673/", False),
        ("amqps://guest:guest@127.0.0.1:5672/", False),
    ],
)
def test_which_amqp_urls_are_the_loopback_default(url: str, expected: bool) -> None:
    assert is_loopback_default(url, "amqp", 5672) is expected


def test_an_instance_it_did_not_start_is_used_and_left_running(redis_url: str) -> None:
    out = StringIO()
    with ExitStack() as stack:
        assert provide(stack, "redis", Setting(redis_url, "the test"), out) == redis_url
    assert out.getvalue().startswith("Redis: using the one at ")
    assert redis_problem(redis_url) is None  # still there


def _run(
    module: str, *args: str, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO, env={**clean, **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return result, time.monotonic() - started


def test_a_redis_url_given_by_flag_that_does_not_answer_is_one_line() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result, took = _run("bench.verifier", "--redis-url", url, env={})
    assert result.returncode != 0
    assert took < 10
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, result.stderr
    assert line.startswith("Redis: nothing answers at redis://:***@127.0.0.1:")
    assert "(set by --redis-url)" in line
    assert "hunter2" not in result.stderr + result.stdout  # the password never shown


def test_an_amqp_url_from_the_environment_that_does_not_answer_names_the_variable(
    redis_url: str,
) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    result, took = _run(
        "bench.events", env={"AUTHGATE_REDIS_URL": redis_url, "AUTHGATE_AMQP_URL": url}
    )
    assert result.returncode != 0
    assert took < 15
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("Redis: using the one at "), result.stderr
    assert lines[-1].startswith("RabbitMQ: nothing answers at amqp://guest:***@127.0.0.1:")
    assert "(set by AUTHGATE_AMQP_URL)" in lines[-1]
    assert "Traceback" not in result.stderr


def test_bin_setup_on_an_installed_machine_is_one_line_per_step() -> None:
    result = subprocess.run(
        [str(REPO / "bin" / "setup")], capture_output=True, text=True, timeout=600, check=True
    )
    lines = result.stderr.strip().splitlines()
    assert result.stdout == ""
    # system packages, OpenID Provider, axe-core, Helm, Python
    assert len(lines) == 5, result.stderr
    assert all(line.startswith("setup: ") for line in lines), result.stderr


@pytest.mark.parametrize(
    "command", ["bench", "bench-issuer", "bench-events", "bench-gateway", "bench-path"]
)
def test_each_benchmark_command_starts(command: str) -> None:
    """Through the README's own command (imports, arguments), without measuring."""
    result = subprocess.run(
        [str(REPO / "bin" / command), "--help"], capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--redis-url" in result.stdout


def test_a_list_of_rabbitmq_nodes_is_used_when_any_answers(amqp_url: str) -> None:
    dead = f"amqp://u:hunter2@127.0.0.1:{free_port()}/"
    assert amqp_problem(f"{dead},{amqp_url}") is None
    out = StringIO()
    with ExitStack() as stack:
        listed = f"{dead},{amqp_url}"
        assert provide(stack, "amqp", Setting(listed, "the test"), out) == listed
    assert out.getvalue().startswith("RabbitMQ: using the one at amqp://u:***@127.0.0.1:")
    assert "hunter2" not in out.getvalue()
    # None answering: one line, every password of the list redacted.
    both_dead = f"{dead},amqp://v:hunter2@127.0.0.1:{free_port()}/"
    with ExitStack() as stack, pytest.raises(Unavailable) as refused:
        provide(stack, "amqp", Setting(both_dead, "the test"), out)
    assert "hunter2" not in str(refused.value)
    assert "amqp://v:***@127.0.0.1:" in str(refused.value)
