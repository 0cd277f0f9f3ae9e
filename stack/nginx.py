"""Render the project's nginx templates and run nginx from them on one machine.

Used by `bin/demo`, the tests and the benchmark, so all three run the nginx config that
ships in `nginx/`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from .processes import Child, wait_for_port

NGINX_DIR = Path(__file__).resolve().parent.parent / "nginx"
_PLACEHOLDER = re.compile(r"\$\{(AUTHGATE_[A-Z0-9_]+)\}")


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill `${AUTHGATE_*}` placeholders; a placeholder without a value is an error."""
    missing = sorted({m for m in _PLACEHOLDER.findall(template) if m not in values})
    if missing:
        raise ValueError(f"no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if found is None:
        raise FileNotFoundError("nginx is not installed (bin/setup installs it)")
    return found


class Nginx:
    """nginx running in the foreground from a rendered config in `runtime`."""

    def __init__(self, runtime: Path, template: Path, values: Mapping[str, str]) -> None:
        self.runtime = runtime
        runtime.mkdir(parents=True, exist_ok=True)
        snippets = runtime / "authgate"
        if not snippets.exists():
            snippets.symlink_to(NGINX_DIR / "authgate", target_is_directory=True)
        self.conf = runtime / "nginx.conf"
        defaults = {
            "AUTHGATE_NGINX_RUNTIME": str(runtime),
            "AUTHGATE_NGINX_ERROR_LOG": str(runtime / "error.log"),
            "AUTHGATE_NGINX_ACCESS_LOG": str(runtime / "access.log"),
        }
        rendered = render(template.read_text(), {**defaults, **values})
        self.conf.write_text(rendered)
        self.child: Child | None = None

    def check(self) -> None:
        """`nginx -t`: raise with nginx's own message when the config is rejected."""
        result = subprocess.run(
            [nginx_binary(), "-t", "-p", str(self.runtime), "-c", str(self.conf)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"nginx rejected {self.conf}:\n{result.stderr}")

    def start(self, port: int) -> None:
        self.check()
        self.child = Child(
            [nginx_binary(), "-p", str(self.runtime), "-c", str(self.conf)],
            log=self.runtime / "nginx.out",
            stop_signal=signal.SIGQUIT,  # graceful: finish requests in flight
        )
        wait_for_port(port, self.child.start().process)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(grace=10)

    def error_log(self) -> str:
        path = self.runtime / "error.log"
        return path.read_text() if path.exists() else ""
