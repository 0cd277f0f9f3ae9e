"""Redis and RabbitMQ for the commands that run on one machine.

The rule, for `bin/demo` and every `bin/bench*`: use what answers at the configured URL;
if nothing does and the URL is the loopback default, start a private instance (data and
logs under `run/`) and stop exactly it on the way out; any other URL that does not answer
is an error naming the URL and the setting it came from. The tests use the same local
instances on free ports in a temporary directory (`tests/backends.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

import redis

from authgate import redis_client
from authgate.config import redact_url
from authgate.contract import DEFAULT_AMQP_URL, DEFAULT_REDIS_URL

from .processes import Child, StartFailed, free_ports, listening

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "run"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
PROBE_TIMEOUT = 3.0  # seconds: a URL that does not answer within this is not there


class Unavailable(RuntimeError):
    """Nothing answers at a URL we may not start anything for, or starting failed."""


# --- probes: None when the service answers, else why not ------------------------------


def redis_problem(url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    client = redis_client.connect_blocking(url, timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def amqp_problem(url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when RabbitMQ answers at `url`, or at any node of a list (`issuer.amqp`)."""
    import aio_pika

    from issuer.amqp import node_urls

    async def connect() -> None:
        problems = []
        for node in node_urls(url):
            try:
                connection = await aio_pika.connect(node, timeout=timeout)
            except Exception as exc:  # the next node may answer
                problems.append(exc)
                continue
            await connection.close()
            return
        raise problems[-1]

    quiet = logging.getLogger("aiormq.connection")  # it logs every refused connect
    level, quiet.level = quiet.level, logging.CRITICAL
    try:
        asyncio.run(asyncio.wait_for(connect(), (timeout + 1) * len(url.split(","))))
    except Exception as exc:  # any failure to connect is the answer
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        quiet.setLevel(level)
    return None


# --- private instances ----------------------------------------------------------------


def _binary(name: str, *preferred: str) -> str:
    for path in preferred:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise Unavailable(f"{name} is not installed (bin/setup installs it)")
    return found


class LocalRedis:
    """`redis-server` on 127.0.0.1:`port`, nothing persisted, files in `workdir`."""

    name = "Redis"

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir, self.port = workdir, port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.child: Child | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.workdir), "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--logfile", ""]  # fmt: skip
        self.child = Child(argv, log=self.workdir / "redis.log").start()
        self.child.wait_until(lambda: redis_problem(self.url, 0.5) is None, "redis-server", 20)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


RABBITMQ_CONF = """\
# Written by authgate for a private RabbitMQ node; nothing of /etc/rabbitmq applies.
listeners.tcp.1 = 127.0.0.1:{port}
loopback_users.guest = true
log.file.level = warning
log.console = false
"""


class LocalRabbitMQ:
    """A RabbitMQ node of its own: node name, Erlang port mapper, distribution port,
    Mnesia, logs and config under `workdir`, so no distribution config moves its port
    and it shares nothing with a system broker. `ports` are (AMQP, epmd, distribution).

    The nodes of a cluster on one host (`stack/rabbitmq_cluster.py`) share one port
    mapper, started by the cluster (`own_epmd=False`), and one Erlang `cookie`."""

    name = "RabbitMQ"

    def __init__(
        self,
        workdir: Path,
        ports: tuple[int, int, int],
        *,
        own_epmd: bool = True,
        cookie: str | None = None,
    ) -> None:
        self.workdir, (self.port, self.epmd_port, self.dist_port) = workdir, ports
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.node = f"authgate-{self.port}@localhost"
        self.own_epmd, self.cookie = own_epmd, cookie
        self.children: list[Child] = []
        self.server: Child | None = None
        self.ready = False

    def _env(self) -> dict[str, str]:
        work = self.workdir
        (work / "rabbitmq.conf").write_text(RABBITMQ_CONF.format(port=self.port))
        (work / "enabled_plugins").write_text("[].\n")
        (work / "rabbitmq-env.conf").write_text("")
        if self.cookie is not None:
            cookie = work / ".erlang.cookie"
            cookie.unlink(missing_ok=True)
            cookie.write_text(self.cookie)
            cookie.chmod(0o400)  # Erlang refuses a cookie others can read
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        return {
            **keep,
            "HOME": str(work),  # the Erlang cookie lives here
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CONFIG_FILE": str(work / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(work / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(work / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(work / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(work / "mnesia"),
            "RABBITMQ_LOG_BASE": str(work / "log"),
            "RABBITMQ_PID_FILE": str(work / "rabbitmq.pid"),
        }

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the node (and its own port mapper) without waiting for it to boot."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = self._env()
        if self.own_epmd:
            # The port mapper is ours too (in the foreground, on loopback), so it stops
            # with the node instead of lingering as the daemon Erlang would start.
            epmd = Child([_binary("epmd"), "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                         log=self.workdir / "epmd.log", env=env)  # fmt: skip
            self.children.append(epmd)
            epmd.start().wait_until(lambda: listening(self.epmd_port), "epmd", 10)
        server = _binary("rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server")
        self.server = Child([server], log=self.workdir / "rabbitmq.log", env=env, cwd=self.workdir)
        self.children.append(self.server)
        self.server.start()

    def wait_ready(self, timeout: float = 90) -> None:
        if self.server is None:
            raise RuntimeError("the node was not launched")
        self.server.wait_until(
            lambda: listening(self.port) and amqp_problem(self.url, 2) is None,
            "rabbitmq-server", timeout,
        )  # fmt: skip
        self.ready = True

    def kill(self) -> None:
        """End the node at once (SIGKILL, no goodbye to its peers or clients), as a crash
        or a lost machine would; its port mapper stays."""
        if self.server is not None:
            self.server.stop_signal = signal.SIGKILL
            self.server.stop(grace=5)
            self.children.remove(self.server)
            self.server, self.ready = None, False

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """`rabbitmqctl` against this node; its output, or StartFailed with it."""
        ctl = _binary("rabbitmqctl", "/usr/lib/rabbitmq/bin/rabbitmqctl")
        done = subprocess.run(
            [ctl, "-n", self.node, *args], env=self._env(), cwd=self.workdir,
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise StartFailed(f"rabbitmqctl {' '.join(args)} exited with {done.returncode}",
                              (done.stdout + done.stderr).strip())  # fmt: skip
        return done.stdout

    def stop(self) -> None:
        # A node that came up gets time to stop cleanly; one stopped half-way through its
        # boot has nothing to keep and may not heed SIGTERM before it is booted.
        grace = 30 if self.ready else 3
        for child in reversed(self.children):  # the node first, then its port mapper
            child.stop(grace=grace)
        self.children, self.server, self.ready = [], None, False


# --- the rule -------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """A service URL and where it came from (a flag, an environment variable, or the
    default), so an error can name what to change."""

    url: str
    source: str


def amqp_shown(value: str) -> str:
    from issuer.amqp import shown

    return shown(value)


def is_loopback_default(url: str, scheme: str, port: int) -> bool:
    """Is `url` the one-machine default of its kind, which we may start ourselves?"""
    parts = urlsplit(url)
    if parts.scheme != scheme or (parts.hostname or "") not in LOOPBACK:
        return False
    if (parts.port or port) != port:
        return False
    if scheme == "redis":
        return parts.password is None
    user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
    return (user, password) == ("guest", "guest") and parts.path in ("", "/")


def provide(stack: ExitStack, kind: str, setting: Setting, out: IO[str] = sys.stderr) -> str:
    """The URL to use for `kind` ("redis" or "amqp"); starts and registers on `stack` the
    stop of a private instance where the rule above says so."""
    if kind == "redis":
        problem, scheme, port, name = redis_problem(setting.url), "redis", 6379, "Redis"
    else:
        problem, scheme, port, name = amqp_problem(setting.url), "amqp", 5672, "RabbitMQ"
    shown = redact_url(setting.url) if kind == "redis" else amqp_shown(setting.url)
    if problem is None:
        print(f"{name}: using the one at {shown}", file=out)
        return setting.url
    if not is_loopback_default(setting.url, scheme, port):
        raise Unavailable(
            f"{name}: nothing answers at {shown} (set by {setting.source}): {problem}"
        )
    workdir = RUN / kind_dir(kind)
    instance = local_instance(kind, workdir, port)
    stack.callback(instance.stop)  # registered first: a half-way start is stopped too
    try:
        instance.start()
    except (StartFailed, OSError) as exc:
        raise Unavailable(f"{name}: could not start one at {shown}: {exc}") from exc
    url = setting.url if kind == "amqp" else _with_db(instance.url, setting.url)
    print(f"{name}: started at {redact_url(url)} ({workdir.relative_to(REPO)})", file=out)
    return url


def local_instance(kind: str, workdir: Path, port: int) -> LocalRedis | LocalRabbitMQ:
    """A private Redis or RabbitMQ on `port` (RabbitMQ's port mapper and distribution
    port on free ones), files in `workdir`; not started yet."""
    if kind == "redis":
        return LocalRedis(workdir, port)
    epmd_port, dist_port = free_ports(2)
    return LocalRabbitMQ(workdir, (port, epmd_port, dist_port))


def kind_dir(kind: str) -> str:
    return {"redis": "redis", "amqp": "rabbitmq"}[kind]


def _with_db(started: str, configured: str) -> str:
    """The started instance's URL with the configured database number."""
    path = urlsplit(configured).path or "/0"
    return started.rsplit("/", 1)[0] + path


# --- for the commands' argument parsers -----------------------------------------------

DEFAULTS = {
    "redis": ("AUTHGATE_REDIS_URL", DEFAULT_REDIS_URL),
    "amqp": ("AUTHGATE_AMQP_URL", DEFAULT_AMQP_URL),
}


def add_arguments(parser: argparse.ArgumentParser, *kinds: str, redis_db: int = 0) -> None:
    """`--redis-url` / `--amqp-url`, defaulting to the environment, then the default."""
    for kind in kinds:
        variable, default = DEFAULTS[kind]
        if kind == "redis":
            default = default.rsplit("/", 1)[0] + f"/{redis_db}"
        parser.add_argument(
            f"--{kind}-url",
            default=None,
            help=f"default: ${variable}, else {default} (started if nothing answers)",
        )
        parser.set_defaults(**{f"_{kind}_default": default})


def setting(args: argparse.Namespace, kind: str) -> Setting:
    variable, _ = DEFAULTS[kind]
    flag = getattr(args, f"{kind}_url")
    if flag:
        return Setting(flag, f"--{kind}-url")
    if os.environ.get(variable):
        return Setting(os.environ[variable], variable)
    return Setting(getattr(args, f"_{kind}_default"), "the default")


@contextmanager
def running(args: argparse.Namespace, *kinds: str) -> Iterator[dict[str, str]]:
    """The URLs of `kinds`, each used or started per the rule; what was started stops
    when the block ends, however it ends. An unavailable service exits with one line."""
    with ExitStack() as stack:
        try:
            urls = {kind: provide(stack, kind, setting(args, kind)) for kind in kinds}
        except Unavailable as exc:
            raise SystemExit(str(exc)) from None
        yield urls
