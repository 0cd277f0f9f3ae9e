"""`authgate-gateway`: validate kong.yml offline; ping, dump, diff, sync a Kong; serve it locally.

Like decK: offline and online verbs apart, `-` reads stdin, every flag also from the
environment (`AUTHGATE_GATEWAY_<FLAG>`), and exit codes CI can use: 0 done / no diff,
2 differences found (diff), 1 error. Only `main()` exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from authgate import serving
from authgate.config import DEFAULT_HEADER_TIMEOUT
from authgate.logs import configure_logging
from authgate.serving import UVICORN
from gateway import admin, declarative
from gateway.body import DEFAULT_CLIENT_MAX_BODY_SIZE, parse_size
from gateway.plugins import DEFAULT_DIR, PluginError

ENV = "AUTHGATE_GATEWAY_"
log = logging.getLogger("authgate.gateway")


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV + name.upper().replace("-", "_"), default)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="authgate-gateway",
        description="Validate, diff, sync and serve a Kong declarative config (kong.yml).",
        epilog="Every flag can also be set as AUTHGATE_GATEWAY_<FLAG> (e.g. _KONG_ADDR).",
    )
    top.add_argument(
        "--plugins-dir",
        default=_env("plugins-dir", str(DEFAULT_DIR)),
        help="where plugin modules live (default: the project's plugins/)",
    )
    top.add_argument(
        "--log-level", default=_env("log-level", "info"), help="debug, info, warning, error"
    )
    verbs = top.add_subparsers(dest="verb", required=True, metavar="VERB")

    def online(name: str, text: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=text, description=text)
        sub.add_argument(
            "--kong-addr",
            default=_env("kong-addr", "http://localhost:8001"),
            help="Kong Admin API URL (default: %(default)s)",
        )
        sub.add_argument(
            "--header",
            action="append",
            default=[h for h in _env("header", "").split("\n") if h],
            help="extra header for the Admin API, 'Name: value' (repeatable; e.g. a token)",
        )
        sub.add_argument(
            "--timeout",
            type=float,
            default=float(_env("timeout", "10")),
            help="seconds per Admin API call (default: %(default)s)",
        )
        return sub

    sub = verbs.add_parser("validate", help="check a kong.yml offline (exit 1 on errors)")
    sub.add_argument("file", help="kong.yml, or - for stdin")
    online("ping", "check that the Kong Admin API answers; print its version")
    sub = online("dump", "print the config Kong is running (DB-less GET /config)")
    sub.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    sub = online("diff", "show what sync would change (exit 2 when it would change anything)")
    sub.add_argument("file", help="kong.yml, or - for stdin")
    sub = online("sync", "load the file into Kong (DB-less POST /config)")
    sub.add_argument("file", help="kong.yml, or - for stdin")
    sub = verbs.add_parser("serve", help="serve the file locally: Kong's routing + our plugins")
    sub.add_argument("file", help="kong.yml, or - for stdin")
    sub.add_argument(
        "--host", default=_env("host", "127.0.0.1"), help="address (default: %(default)s)"
    )
    sub.add_argument(
        "--port",
        type=int,
        default=int(_env("port", "8000")),
        help="port (default: %(default)s, Kong's proxy port)",
    )
    sub.add_argument(
        "--client-max-body-size",
        type=_size,
        default=_env("client-max-body-size", DEFAULT_CLIENT_MAX_BODY_SIZE),
        help="largest request body, nginx syntax (10m, 512k; 0: no limit; default: %(default)s)",
    )
    return top


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    plugins_dir = Path(args.plugins_dir)
    if args.verb == "validate":
        config = declarative.load(args.file, plugins_dir=plugins_dir)
        counts = ", ".join(
            f"{len(getattr(config, kind))} {kind}"
            for kind in ("services", "routes", "plugins", "consumers", "upstreams")
        )
        print(f"{args.file}: valid ({counts})")
        return 0
    if args.verb == "serve":
        return serve(args, plugins_dir)
    kong = admin.Admin(args.kong_addr, args.header, args.timeout)
    if args.verb == "ping":
        print(kong.ping())
        return 0
    if args.verb == "dump":
        text = kong.dump()
        if args.output == "-":
            sys.stdout.write(text)
        else:
            Path(args.output).write_text(text, encoding="utf-8")
        return 0
    text = declarative.read(args.file)
    config = declarative.parse(text, args.file, plugins_dir=plugins_dir)
    body, _ = declarative.substitute(text, os.environ)
    if args.verb == "diff":
        changes = kong.diff(config, body)
        return 2 if changes else 0
    kong.sync(config, body)
    return 0


def serve(args: argparse.Namespace, plugins_dir: Path) -> int:
    import uvicorn

    from gateway.proxy import Gateway

    config = declarative.load(args.file, plugins_dir=plugins_dir)
    app = Gateway(config, plugins_dir, args.client_max_body_size)
    log.info(
        "gateway on http://%s:%d: %d route(s), %d plugin instance(s) from %s",
        args.host,
        args.port,
        len(config.routes),
        len(app.plugins.instances),
        args.file,
    )
    # Headers within the services' deadline; a body within ten minutes (uploads to a
    # proxy are bigger and slower than a sign-in form), not a byte a second forever.
    serving.configure(DEFAULT_HEADER_TIMEOUT, body_timeout=600)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        **UVICORN,
        timeout_keep_alive=75,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    level = str(args.log_level).upper()
    if not isinstance(getattr(logging, level, None), int):
        print(f"authgate-gateway: unknown log level {args.log_level!r}", file=sys.stderr)
        sys.exit(1)
    configure_logging(level)
    try:
        code = run(args)
    except (declarative.DeclarativeError, admin.AdminError, PluginError) as exc:
        print(f"authgate-gateway {args.verb}: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
