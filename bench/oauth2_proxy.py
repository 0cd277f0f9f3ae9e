"""oauth2-proxy, the peer people pick instead of authgate, built and run for the benchmark.

Built once with `go install` from the Go module proxy at a pinned version and cached
(a build takes minutes; the binary is reused by every later run). Without Go, or when
the build fails, the benchmark says so and runs without it.

It runs behind the same nginx `auth_request` setup as the verifier (bench's nginx.conf
template, location `/o2p/`), once with its cookie session store and once with its Redis
store (a private redis-server on a free port). A valid session comes from its own
`--htpasswd-file` sign-in, so no outside provider is needed: the provider settings are
placeholders it never calls.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

VERSION = "v7.15.6"
MODULE = "github.com/oauth2-proxy/oauth2-proxy/v7"
USER, PASSWORD = "bench@bench.test", "bench-password"
COOKIE = "_oauth2_proxy"
#: Where the official Go tarball installs, often not on PATH.
GO_ELSEWHERE = ("/usr/local/go/bin/go",)


def cache_dir() -> Path:
    """Where the binary is kept between runs: $AUTHGATE_BENCH_CACHE, else the user's cache."""
    configured = os.environ.get("AUTHGATE_BENCH_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "authgate-bench"


def binary(say: Callable[[str], None]) -> Path | None:
    """The cached oauth2-proxy binary, built first if missing; None (said why) without Go."""
    target = cache_dir() / f"oauth2-proxy-{VERSION}"
    built = target / "oauth2-proxy"
    if built.is_file() and os.access(built, os.X_OK):
        return built
    go = shutil.which("go") or next((p for p in GO_ELSEWHERE if os.access(p, os.X_OK)), None)
    if go is None:
        say("bench: no Go toolchain found: the oauth2-proxy targets are skipped")
        return None
    say(f"bench: building oauth2-proxy {VERSION} with go install (once; cached in {target})")
    target.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(target), "GOFLAGS": "-buildvcs=false"}
    result = subprocess.run(
        [go, "install", f"{MODULE}@{VERSION}"], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0 or not built.is_file():
        tail = "\n".join(result.stderr.splitlines()[-5:])
        say(f"bench: building oauth2-proxy failed; its targets are skipped:\n{tail}")
        return None
    return built


def write_htpasswd(path: Path) -> None:
    """One user; `{SHA}` is the htpasswd scheme oauth2-proxy reads besides bcrypt."""
    digest = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()  # noqa: S324
    path.write_text(f"{USER}:{{SHA}}{digest}\n")


def command(built: Path, port: int, htpasswd: Path, redis_url: str | None) -> list[str]:
    argv = [
        str(built), f"--http-address=127.0.0.1:{port}", f"--htpasswd-file={htpasswd}",
        "--email-domain=*", "--cookie-secure=false", "--client-id=bench",
        "--client-secret=bench", "--cookie-secret=" + "b" * 32, "--upstream=static://202",
        "--request-logging=false", "--auth-logging=false", "--standard-logging=false",
    ]  # fmt: skip
    if redis_url is not None:
        argv += ["--session-store-type=redis", f"--redis-connection-url={redis_url}"]
    return argv


def sign_in(port: int) -> str:
    """Sign in through the htpasswd form; the `Cookie` header value of the session."""
    response = httpx.post(
        f"http://127.0.0.1:{port}/oauth2/sign_in",
        data={"username": USER, "password": PASSWORD, "rd": "/"},
    )
    value = response.cookies.get(COOKIE)
    if response.status_code != 302 or not value:
        raise RuntimeError(f"oauth2-proxy sign-in answered {response.status_code}")
    return f"{COOKIE}={value}"
