#!/usr/bin/env python3
"""Kong plugin `idempotency`: makes POST/PATCH retries safe, backed by Redis.

Semantics of the IETF httpapi Idempotency-Key draft, stricter where Stripe is:
the first request with a key runs; a concurrent one gets 409 + Retry-After; a later one
gets the stored response replayed (`Idempotent-Replayed: true`) without reaching the
upstream; the same key with a different request gets 422. Keys are scoped per route
(else service) and per caller, and stored hashed.

Written to the kong-pdk contract (module-level `Schema`, `version`, `priority`, class
`Plugin(config)` with phase methods), python-style. Kong 3.9 never answers a PDK call with
an error: a failed call returns nil (kong/runloop/plugin_servers/rpc/mp_rpc.lua:125-166),
so results are checked, not caught. The phases are `access` and `response` and cost few
round trips to Kong (docs/gateway.md, Performance). The same file runs under Kong's
dedicated plugin server (`python3 idempotency.py --kong-prefix …`, see kong/README.md)
and under `authgate-gateway serve`, which awaits the phases' `_async` twins on its event
loop: the same steps, with an asyncio client whose scripts go out pipelined with other
requests' (one round trip per script, no thread hop). It imports only redis, authgate's
Redis connection layer (`authgate/redis_client.py`, one file the Kong image ships beside
it), and kong-pdk when run as a server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Generator, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import redis

from authgate import redis_client

version = "1.0.0"
# Runs after authentication plugins (1000-1999) and rate limiting (910), before the
# proxy: a request that will be refused anyway never takes a key.
priority = 900

# Kong's schema DSL (the `config` record's fields); `authgate-gateway validate` checks
# kong.yml against it and Kong does the same when it loads the plugin.
# Kong Enterprise's Redis fields (its plugins' `config.redis` record): a sentinel or
# cluster node is {host, port} / {ip, port} as there; `sentinel_role` may only be
# `master`, since this plugin writes. Kong EE's defaults: port 6379, ssl_verify false,
# cluster_max_redirections 5.
_SENTINEL_NODE = [
    {"host": {"type": "string", "required": True}},
    {"port": {"type": "integer", "default": 6379, "between": [1, 65535]}},
]
_CLUSTER_NODE = [
    {"ip": {"type": "string", "required": True}},
    {"port": {"type": "integer", "default": 6379, "between": [1, 65535]}},
]
REDIS_FIELDS: list[dict[str, dict[str, Any]]] = [
    {"host": {"type": "string"}},
    {"port": {"type": "integer", "default": 6379, "between": [1, 65535]}},
    {"database": {"type": "integer", "default": 0, "between": [0, 15]}},
    {"username": {"type": "string"}},
    {"password": {"type": "string"}},
    {"ssl": {"type": "boolean", "default": False}},
    {"ssl_verify": {"type": "boolean", "default": False}},
    {"sentinel_master": {"type": "string"}},
    {"sentinel_role": {"type": "string", "one_of": ["master"]}},
    {"sentinel_nodes": {"type": "array", "len_min": 1,
                        "elements": {"type": "record", "fields": _SENTINEL_NODE}}},
    {"sentinel_username": {"type": "string"}},
    {"sentinel_password": {"type": "string"}},
    {"cluster_nodes": {"type": "array", "len_min": 1,
                       "elements": {"type": "record", "fields": _CLUSTER_NODE}}},
    {"cluster_max_redirections": {"type": "integer", "default": 5, "between": [1, 100]}},
]  # fmt: skip

Schema: list[dict[str, dict[str, Any]]] = [
    # authgate's URL syntax (standalone, rediss://, redis+sentinel://, redis+cluster://;
    # docs/scaling.md). Used unless `redis` names a host, sentinel nodes or cluster nodes.
    {"redis_url": {"type": "string", "default": "redis://127.0.0.1:6379/0"}},
    {"redis": {"type": "record", "fields": REDIS_FIELDS}},
    {"redis_timeout_ms": {"type": "integer", "default": 500, "between": [10, 60000]}},
    {
        "methods": {
            "type": "array",
            "default": ["POST", "PATCH"],
            "elements": {"type": "string", "one_of": ["POST", "PATCH", "PUT", "DELETE"]},
        }
    },
    {"required": {"type": "boolean", "default": False}},
    # How long a completed response is replayed (the draft suggests at least 24 h).
    {"retention_seconds": {"type": "integer", "default": 86400, "between": [60, 2592000]}},
    # How long a key stays locked by a request in flight. Keep it above the service's
    # read_timeout (Kong's default 60 s): a lock that lapses mid-request lets a retry run
    # twice. Completion is fenced by an owner token either way.
    {"lock_seconds": {"type": "integer", "default": 75, "between": [1, 3600]}},
    # Keyed request bodies larger than this get 413 (they are read whole to fingerprint
    # them; Kong reads one over client_body_buffer_size back from its temp file).
    {"max_request_body_bytes": {"type": "integer", "default": 1048576, "between": [1, 16777216]}},
    # Responses larger than this are not kept: a retry gets 409 response-not-stored.
    {"max_body_bytes": {"type": "integer", "default": 1048576, "between": [0, 16777216]}},
    # "store": an upstream 5xx is replayed like any response (the upstream may have done
    # the work). "release": the key is freed and a retry runs again.
    {"on_5xx": {"type": "string", "default": "store", "one_of": ["store", "release"]}},
    {
        "replay_headers": {
            "type": "array",
            "elements": {"type": "string"},
            "default": [
                "content-type",
                "content-language",
                "location",
                "etag",
                "last-modified",
                "cache-control",
            ],
        }
    },
    # Redis unreachable: false → 503 (no write may run twice); true → pass through.
    {"fail_open": {"type": "boolean", "default": False}},
    # Replication is asynchronous: a key taken just before a failover may be lost, and a
    # retry run again (docs/scaling.md). With N > 0 a key counts as taken only once N
    # replicas acknowledged it (Redis WAIT) within wait_timeout_ms; else it is released and
    # the request answered like an unreachable Redis. Standalone and Sentinel only.
    {"wait_replicas": {"type": "integer", "default": 0, "between": [0, 10]}},
    {"wait_timeout_ms": {"type": "integer", "default": 100, "between": [1, 10000]}},
]

# Each field's default, read from the Schema above (where it is declared).
DEFAULTS: dict[str, Any] = {
    name: field["default"]
    for entry in Schema
    for name, field in entry.items()
    if "default" in field
}

logger = logging.getLogger("authgate.plugins.idempotency")

KEY_HEADERS = ("idempotency-key", "x-idempotency-key")
CTX_KEY = "authgate.idempotency"
REPLAYED = "Idempotent-Replayed"
# The statuses Kong's nginx config hands to its error handler
# (kong/templates/nginx_kong.lua:100-102 at 3.9.1). Only an answer with one of them can be
# Kong's own (Kong.handle_error marks the source "error", kong/init.lua:1855-1860); any
# other status in the response phase came from the upstream, so only these cost a
# get_source() round trip.
KONG_ERROR_STATUSES = frozenset(
    {400, 404, 405, 408, 411, 412, 413, 414, 417, 494, 500, 502, 503, 504}
)
# Statuses that carry no content (RFC 9110 §15.3.5, §15.4.5): nginx reads no body for them,
# so there is none to fetch.
NO_CONTENT = frozenset({204, 304})

# KEYS[1] record. ARGV: fingerprint, owner token, lock ms.
# → {"acquired"} | {"mismatch"} | {"busy", pttl} | {"done", status, headers, body, stored}
ACQUIRE = """
local r = redis.call('HMGET', KEYS[1], 'state', 'fp', 'status', 'headers', 'body', 'stored')
if not r[1] then
  redis.call('HSET', KEYS[1], 'state', 'running', 'fp', ARGV[1], 'owner', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'acquired'}
end
if r[2] ~= ARGV[1] then return {'mismatch'} end
if r[1] == 'running' then return {'busy', redis.call('PTTL', KEYS[1])} end
return {'done', r[3], r[4], r[5], r[6]}
"""

# KEYS[1] record. ARGV: owner, status, headers, body, stored, retention s. Fenced: a
# request whose lock lapsed and was taken over stores nothing.
COMPLETE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[2], 'headers', ARGV[3],
           'body', ARGV[4], 'stored', ARGV[5])
redis.call('HDEL', KEYS[1], 'owner')
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
"""

# KEYS[1] record. ARGV: owner. Frees the key only while this request still owns it.
RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

# The Redis work a phase asks its host to do: (what, record key, ARGV). "acquire",
# "complete" and "release" run the script of that name (one round trip each);
# "acquire+wait" runs ACQUIRE and WAIT on one connection and answers [reply, replicas].
Op = tuple[str, str, list[Any]]
# A phase's logic, written once: it yields the Redis work it needs and is sent the reply
# (or has the error thrown in); `Plugin.run` drives it on Kong's plugin server (blocking
# client, on kong-pdk's thread), `Plugin.run_async` in serve (asyncio client, on serve's
# event loop: no thread hop, and nothing blocks the loop).
Steps = Generator[Op, Any, Any]

_clients: dict[tuple[redis_client.Target, int], redis.Redis] = {}
_clients_lock = threading.Lock()
_async_pipelines: dict[tuple[redis_client.Target, int], redis_client.AutoPipeline] = {}


def redis_target(config: dict[str, Any]) -> redis_client.Target:
    """Where the config points: Kong Enterprise's fields when `redis` names a host,
    sentinel nodes or cluster nodes, else `redis_url`. ValueError when incomplete."""
    fields = config.get("redis") or {}
    common: dict[str, Any] = {
        "username": fields.get("username"),
        "password": fields.get("password"),
        "tls": bool(fields.get("ssl")),
        "tls_verify": bool(fields.get("ssl_verify")),
    }
    if fields.get("sentinel_nodes") or fields.get("sentinel_master"):
        if not (fields.get("sentinel_nodes") and fields.get("sentinel_master")):
            raise ValueError("redis.sentinel_master and redis.sentinel_nodes go together")
        nodes = tuple((n["host"], int(n.get("port") or 6379)) for n in fields["sentinel_nodes"])
        return redis_client.Target(
            "sentinel", url="", nodes=nodes, master=fields["sentinel_master"],
            db=int(fields.get("database") or 0),
            sentinel_username=fields.get("sentinel_username"),
            sentinel_password=fields.get("sentinel_password"), **common,
        )  # fmt: skip
    if fields.get("cluster_nodes"):
        nodes = tuple((n["ip"], int(n.get("port") or 6379)) for n in fields["cluster_nodes"])
        limit = int(fields.get("cluster_max_redirections") or 5)
        return redis_client.Target("cluster", url="", nodes=nodes, max_redirections=limit, **common)
    if fields.get("host"):
        scheme = "rediss" if common["tls"] else "redis"
        auth = ""
        if common["password"]:
            user, secret = common["username"] or "", common["password"]
            auth = f"{quote(user, safe='')}:{quote(secret, safe='')}@"
        query = "?ssl_cert_reqs=none" if common["tls"] and not common["tls_verify"] else ""
        port, db = fields.get("port") or 6379, fields.get("database") or 0
        return redis_client.parse(f"{scheme}://{auth}{fields['host']}:{port}/{db}{query}")
    return redis_client.parse(str(config["redis_url"]))


def _client(target: redis_client.Target, timeout_ms: int) -> Any:
    """One pooled client per Redis target, shared by every instance of the plugin."""
    with _clients_lock:
        client = _clients.get((target, timeout_ms))
        if client is None:
            # Bytes, not text: stored response bodies are replayed exactly as they came.
            client = redis_client.connect_target(
                target, timeout=timeout_ms / 1000, blocking=True, decode=False
            )
            _clients[(target, timeout_ms)] = client
        return client


def _async_pipeline(target: redis_client.Target, timeout_ms: int) -> redis_client.AutoPipeline:
    """The asyncio twin of `_client`, made on first use in the caller's event loop (serve
    runs one) and shared by every instance there: each turn of the loop, the scripts of all
    the requests on it go to Redis as one pipeline. Only serve's `*_async` phases use it."""
    pipeline = _async_pipelines.get((target, timeout_ms))
    if pipeline is None:
        client = redis_client.connect_target(
            target, timeout=timeout_ms / 1000, blocking=False, decode=False
        )
        pipeline = _async_pipelines[(target, timeout_ms)] = redis_client.AutoPipeline(client)
    return pipeline


class NotReplicated(redis.RedisError):  # type: ignore[misc]
    """Fewer replicas than `wait_replicas` acknowledged a key in time."""


def problem(kong: Any, status: int, kind: str, detail: str, **headers: str) -> None:
    """Ends the request with an RFC 9457 problem+json body."""
    body: dict[str, Any] = {"type": f"tag:authgate,2026:idempotency/{kind}"}
    body |= {"title": kind.replace("-", " "), "status": status, "detail": detail}
    headers["Content-Type"] = "application/problem+json"
    kong.response.exit(status, json.dumps(body).encode(), headers)


def parse_key(raw: str) -> str | None:
    """The key, or None when malformed: 1-255 printable ASCII characters.

    The draft sends it as a structured-field string (quoted); Stripe-style clients send it
    bare. Both name the same key.
    """
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    if not 1 <= len(raw) <= 255 or not all(" " <= c <= "~" for c in raw):
        return None
    return raw


def fingerprint(
    method: str, path: str, query: str, content_type: str, body: Iterable[bytes | memoryview]
) -> str:
    """SHA-256 over what makes two requests "the same" for one key.

    The body is hashed piece by piece as it is given (issue 12: never joined or copied
    whole); `path` may carry undecodable bytes as surrogates (serve's routed path).
    """
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    digest = hashlib.sha256()
    for part in (method, path, urlencode(pairs), content_type):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\x00")
    for piece in body:
        digest.update(piece)
    return digest.hexdigest()


def pieces(body: bytes, size: int = 1 << 20) -> Iterator[memoryview]:
    """The body in slices of `size` bytes, as views into it (nothing is copied)."""
    view = memoryview(body)
    for start in range(0, len(view), size):
        yield view[start : start + size]


def request_line(kong: Any) -> tuple[str, str, str]:
    """(method, path, query) from nginx's `$request`, one PDK call instead of three.

    The path is the request-target as the client sent it (not normalized): two spellings
    of one path are two requests to the fingerprint, the safe direction.
    """
    line = str(kong.nginx.get_var("request") or "")
    method, _, rest = line.partition(" ")
    target = rest.rsplit(" ", 1)[0] if " " in rest else rest
    path, _, query = target.partition("?")
    return method.upper(), path, query


def unbuffer(kong: Any) -> None:
    """Tells Kong not to buffer this response: this request stores nothing.

    A plugin with a `response` phase makes Kong buffer every response on its routes
    (kong/runloop/plugins_iterator.lua:398 at 3.9.1) and run that phase after it; this
    unsets the flag `kong.service.request.enable_buffering()` sets, so Kong streams and
    skips the phase. Another plugin with a response phase on the same route would lose it.
    """
    kong.nginx.set_ctx("buffered_proxying", False)


def first(headers: dict[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, list):
        return str(value[0]) if value else None
    return None if value is None else str(value)


class Plugin:
    def __init__(self, config: dict[str, Any]) -> None:
        # Kong (and serve) hand over the config with the Schema's defaults filled in; a
        # field left out or null still gets the default declared there, and only there.
        config = DEFAULTS | {k: v for k, v in config.items() if v is not None}
        self.methods = frozenset(m.upper() for m in config["methods"])
        self.required = bool(config["required"])
        self.retention = int(config["retention_seconds"])
        self.lock_ms = int(config["lock_seconds"]) * 1000
        self.max_body = int(config["max_body_bytes"])
        self.max_request = int(config["max_request_body_bytes"])
        # Kong adds the entity the plugin is attached to (kong/runloop/plugins_iterator.lua:164
        # at 3.9.1): a route's plugin knows its scope without asking per request.
        self.route_id = config.get("route_id")
        self.release_5xx = config["on_5xx"] == "release"
        self.replay_headers = frozenset(h.lower() for h in config["replay_headers"])
        self.fail_open = bool(config["fail_open"])
        target = redis_target(config)
        self.wait_replicas = int(config["wait_replicas"])
        self.wait_timeout_ms = int(config["wait_timeout_ms"])
        if self.wait_replicas and target.topology == "cluster":
            # WAIT counts the writes of its own connection; a cluster pipeline can't carry it.
            raise ValueError("wait_replicas is not supported on a Redis Cluster")
        self.target, self.timeout_ms = target, int(config["redis_timeout_ms"])
        self.client = client = _client(target, self.timeout_ms)
        self.acquire = client.register_script(ACQUIRE)
        self.complete = client.register_script(COMPLETE)
        self.release = client.register_script(RELEASE)
        self.scripts = {"acquire": self.acquire, "complete": self.complete, "release": self.release}
        self.async_client: Any = None
        self.pipeline: Any = None
        self.async_scripts: dict[str, Any] = {}

    # Kong's plugin server calls the phases; serve awaits their `_async` twins, which run
    # the same steps with the asyncio client (gateway/host.py).
    def access(self, kong: Any) -> None:
        self.run(self.checked(kong))

    async def access_async(self, kong: Any) -> None:
        await self.run_async(self.checked(kong))

    def response(self, kong: Any) -> None:
        self.run(self.recorded(kong))

    async def response_async(self, kong: Any) -> None:
        await self.run_async(self.recorded(kong))

    def run(self, steps: Steps) -> None:
        reply, failure = None, None
        while (op := _next_op(steps, reply, failure)) is not None:
            try:
                reply, failure = self.redis(op), None
            except Exception as exc:
                reply, failure = None, exc

    async def run_async(self, steps: Steps) -> None:
        reply, failure = None, None
        while (op := _next_op(steps, reply, failure)) is not None:
            try:
                reply, failure = await self.redis_async(op), None
            except Exception as exc:
                reply, failure = None, exc

    def redis(self, op: Op) -> Any:
        what, record, args = op
        if what != "acquire+wait":
            return self.scripts[what](keys=[record], args=args)
        # One pipeline is one connection, so WAIT counts exactly this script's write.
        with self.client.pipeline(transaction=False) as pipe:
            self.acquire(keys=[record], args=args, client=pipe)
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
            return pipe.execute()

    async def redis_async(self, op: Op) -> Any:
        if self.async_client is None:  # made in serve's event loop, on first use
            self.pipeline = _async_pipeline(self.target, self.timeout_ms)
            self.async_client = client = self.pipeline.client
            self.async_scripts = {
                name: client.register_script(code)
                for name, code in (
                    ("acquire", ACQUIRE),
                    ("complete", COMPLETE),
                    ("release", RELEASE),
                )
            }
        what, record, args = op
        if what != "acquire+wait":
            script = self.async_scripts[what]
            try:
                # With the other requests' scripts of this turn of the loop, in one pipeline.
                return await self.pipeline.execute_command("EVALSHA", script.sha, 1, record, *args)
            except redis.exceptions.NoScriptError:
                # Redis restarted or was flushed: the script object loads it and runs it.
                return await script(keys=[record], args=args)
        async with self.async_client.pipeline(transaction=False) as pipe:
            await self.async_scripts["acquire"](keys=[record], args=args, client=pipe)
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
            return await pipe.execute()

    def checked(self, kong: Any) -> Steps:
        try:
            yield from self.check(kong)
        except Exception:
            # kong-pdk's server answers Kong only when a phase returns: one that raises leaves
            # Kong's call and the server's thread waiting for ever (kong_pdk/server.py).
            logger.exception("idempotency: access failed")
            problem(kong, 500, "internal", "The idempotency check failed; nothing was run.")

    def check(self, kong: Any) -> Steps:
        headers = kong.request.get_headers() or {}
        raw = next((v for h in KEY_HEADERS if (v := first(headers, h)) is not None), None)
        if raw is None:
            if self.required and (method := request_line(kong)[0]) in self.methods:
                problem(kong, 400, "key-missing", f"{method} here needs an Idempotency-Key.")
            else:
                unbuffer(kong)
            return
        method, path, query = request_line(kong)
        if method not in self.methods:
            unbuffer(kong)
            return
        key = parse_key(raw.strip())
        if key is None:
            detail = "Idempotency-Key must be 1-255 printable ASCII characters."
            problem(kong, 400, "key-malformed", detail)
            return
        body = self.request_body(kong, headers)
        if body is None:
            detail = f"A keyed request body may be at most {self.max_request} bytes."
            problem(kong, 413, "body-too-large", detail)
            return
        record = self.record_key(kong, headers, key)
        content_type = first(headers, "content-type") or ""
        fp = fingerprint(method, path, query, content_type, pieces(body))
        owner = secrets.token_hex(16)
        try:
            reply = yield from self.take(record, fp, owner)
        except redis.RedisError as exc:
            self.redis_down(kong, exc)
            return
        outcome = _text(reply[0])
        if outcome == "acquired":
            kong.ctx.shared.set(CTX_KEY, f"{record} {owner}")
        elif outcome == "mismatch":
            detail = "This Idempotency-Key was used for a different request."
            problem(kong, 422, "key-reused", detail)
        elif outcome == "busy":
            wait = str(max(1, -(-int(reply[1]) // 1000)))
            detail = "A request with this Idempotency-Key is still in progress."
            problem(kong, 409, "in-progress", detail, **{"Retry-After": wait})
        else:
            self.replay(kong, reply)

    def take(self, record: str, fp: str, owner: str) -> Steps:
        """ACQUIRE's reply; with `wait_replicas`, a key taken but not acknowledged by that
        many replicas in time is released again and NotReplicated raised."""
        args = [fp, owner, self.lock_ms]
        if not self.wait_replicas:
            return (yield ("acquire", record, args))
        reply, acked = yield ("acquire+wait", record, args)
        if _text(reply[0]) == "acquired" and int(acked) < self.wait_replicas:
            yield ("release", record, [owner])
            raise NotReplicated(f"{acked} of {self.wait_replicas} replicas acknowledged the key")
        return reply

    def request_body(self, kong: Any, headers: dict[str, Any]) -> bytes | None:
        """The request body, or None when it is over `max_request_body_bytes`.

        Kong keeps a body over `client_body_buffer_size` (8 KiB) in a temp file, and
        `get_raw_body()` answers nil for it; given a size it reads the file up to that size
        (kong/pdk/request.lua:714-760 at 3.9.1). A declared length over the limit is refused
        without asking Kong; nil is never fingerprinted (it would make two different large
        bodies one request).
        """
        length = first(headers, "content-length")
        if length is None and first(headers, "transfer-encoding") is None:
            return b""  # no body: nothing to fetch
        if length is not None and (not length.isdigit() or int(length) > self.max_request):
            return None
        body = kong.request.get_raw_body(self.max_request)
        if isinstance(body, str):
            body = body.encode("latin-1")
        if body is None or len(body) > self.max_request:
            return None
        return bytes(body)

    def recorded(self, kong: Any) -> Steps:
        """Stores the upstream's answer, or frees the key when it must not be kept.

        Kong 3.9 runs this phase whenever it buffered the response, also when the upstream
        failed (then `get_source()` is "error": kong/init.lua Kong.response and
        Kong.handle_error), so no log phase is needed to free a key. A request that never
        gets here (the client went away) keeps its key until `lock_seconds` lapse.
        """
        try:
            held = kong.ctx.shared.get(CTX_KEY)
            if held:
                record, owner = str(held).split(" ", 1)
                yield from self.finish(kong, record, owner)
        except redis.RedisError as exc:
            # The response still goes out; the lock lapses after lock_seconds.
            logger.error("idempotency: could not record a response: %s", exc)
        except Exception:
            logger.exception("idempotency: response phase failed")

    def finish(self, kong: Any, record: str, owner: str) -> Steps:
        # One PDK call is one round trip to Kong (docs/gateway.md, Performance): ask only
        # what this answer needs.
        status = int(kong.response.get_status() or 0)
        if (
            not status
            or (status >= 500 and self.release_5xx)
            or (status in KONG_ERROR_STATUSES and kong.response.get_source() != "service")
        ):
            # The gateway, not the upstream, answered (or 5xx are configured retryable):
            # free the key so a retry can run.
            yield ("release", record, [owner])
            return
        body: bytes | str = b""
        if status not in NO_CONTENT:
            body = kong.service.response.get_raw_body() or b""
        if isinstance(body, str):
            body = body.encode()
        stored = len(body) <= self.max_body
        kept = {}
        if self.replay_headers:
            kept = {
                name: value
                for name, value in (kong.response.get_headers() or {}).items()
                if name.lower() in self.replay_headers
            }
        args = [owner, status, json.dumps(kept), body if stored else b"", int(stored)]
        if not (yield ("complete", record, [*args, self.retention])):
            logger.warning("idempotency: lock lapsed before the response; not stored")

    def replay(self, kong: Any, reply: list[Any]) -> None:
        if _text(reply[4]) != "1":
            detail = "This key's request completed; its response was too large to keep."
            problem(kong, 409, "response-not-stored", detail)
            return
        headers: dict[str, Any] = json.loads(_text(reply[2]))
        headers[REPLAYED] = "true"
        kong.response.exit(int(reply[1]), reply[3], headers)

    def record_key(self, kong: Any, headers: dict[str, Any], key: str) -> str:
        """Redis key for (scope, caller, key), hashed so no key or user id is stored."""
        if self.route_id:
            scope = str(self.route_id)
        else:
            entity = kong.router.get_route() or kong.router.get_service() or {}
            scope = str(entity.get("id") or entity.get("name") or "")
        caller = first(headers, "x-auth-user")  # set by nginx from the verifier, never a client
        if caller:
            caller = "user:" + caller
        else:
            consumer = kong.client.get_consumer()
            ip = kong.client.get_ip() if not consumer else None
            caller = f"consumer:{consumer['id']}" if consumer else f"ip:{ip or ''}"
        digest = hashlib.sha256("\x00".join((scope, caller, key)).encode()).hexdigest()
        return "authgate:idem:" + digest

    def redis_down(self, kong: Any, exc: Exception) -> None:
        if self.fail_open:
            logger.warning("idempotency: Redis unavailable, passing through (fail_open): %s", exc)
            unbuffer(kong)
            return
        logger.error("idempotency: Redis unavailable, refusing: %s", exc)
        detail = "Idempotency keys cannot be checked right now; retry later."
        problem(kong, 503, "unavailable", detail, **{"Retry-After": "1"})


def _next_op(steps: Steps, reply: Any, failure: Exception | None) -> Op | None:
    """The Redis work the steps ask for next, given the last one's reply or failure; None
    once they are done. The one stepping rule of both drivers (`Plugin.run`, `run_async`)."""
    try:
        return steps.send(reply) if failure is None else steps.throw(failure)
    except StopIteration:
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def serve() -> None:
    """Kong's dedicated plugin server for this plugin (kong/README.md), python-style.

    kong-pdk numbers instances from 0 in every process, but Kong keeps the ids it was given
    across a restart of the server and only starts a new instance when told "no plugin
    instance" (kong/runloop/plugin_servers/rpc/mp_rpc.lua:309-316 at 3.9.1): a reused id
    would run another route's config. Ids here start at the start time in ms x 1024, so a
    restarted server never hands out an id its predecessor did (ids stay below 2^53, exact
    in Lua's numbers).
    """
    import sys
    import time

    from kong_pdk import cli
    from kong_pdk.server import PluginServer

    class FreshIds(PluginServer):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.instance_id = time.time_ns() // 1_000_000 * 1024

    if "--no-lua-style" not in sys.argv:
        sys.argv.append("--no-lua-style")
    cli.PluginServer = FreshIds  # start_dedicated_server builds its server from this name
    cli.start_dedicated_server("idempotency", Plugin, version, priority, Schema)


if __name__ == "__main__":
    serve()
