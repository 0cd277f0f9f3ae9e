"""The verifier as a plain ASGI application (STYLE.md: the hot path is plain ASGI).

`/verify` answers one nginx `auth_request` subrequest: 204 with identity headers, 401 with
`WWW-Authenticate` (and the login URL for browsers), 403, or 503 when Redis or the JWKS
fails and nothing cached applies. Everything that can be prepared at start is: header
names as bytes, compiled rules, a cache from request shape to rule. A request seen before
costs a few dict lookups.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import quote

from authgate import serving
from authgate.contract import HEADER_KIND, HEADER_SESSION, IDENTITY_HEADERS
from authgate.cookies import AmbiguousCookie, find_cookie
from authgate.errors import (
    AuthError,
    Forbidden,
    InvalidRequest,
    InvalidToken,
    NoCredential,
    Unavailable,
)
from authgate.jwks import KeySet
from authgate.logs import configure_logging
from authgate.paths import normalize_host, normalize_path, unsafe_path
from authgate.tokens import Claims, TokenVerifier

from .answers import ANONYMOUS, Answer
from .asgi import Message, Receive, Scope, Send
from .metrics import Metrics
from .ops import Operations
from .policy import Access, Rule
from .sessions import SessionRecord, SessionStore
from .settings import Settings, load_settings

log = logging.getLogger("authgate.verifier")

EMPTY_BODY: Message = {"type": "http.response.body", "body": b""}
#: Bound on the request-shape → rule cache; cleared when full (paths are unbounded).
RULE_CACHE_SIZE = 10_000
#: Bound on the header names known to be outside authgate's namespace (cleared when full).
CLEAN_NAMES_SIZE = 1_000
#: Stands for "no rule matched" (and an unknown rule name): deny.
NO_MATCH = Rule(name="(no match)", access=Access.DENY)
#: The names in authgate's namespace that nginx sets itself, on the auth subrequest
#: (nginx/authgate/server.conf) or over a client's on the way upstream (protect-api.conf).
#: A client's header under any other X-Auth-* / X-Authgate-* / X-Original-* name would
#: reach the upstream (nginx clears headers only by name), so such a request is refused.
NGINX_SETS = frozenset(
    name.lower().encode()
    for name in (*(header for header, _ in IDENTITY_HEADERS), HEADER_SESSION, HEADER_KIND,
                 "X-Original-URI", "X-Original-Method", "X-Original-URL", "X-Original-Host",
                 "X-Authgate-Policy", "X-Authgate-Login")
)  # fmt: skip
#: Stands for a path that readers may take differently (`authgate.paths.unsafe_path`).
UNSAFE_PATH = Rule(name="(unsafe path)", access=Access.DENY)


class Request(NamedTuple):
    """The original request, as nginx describes it; built only for refusals."""

    uri: bytes | None
    method: bytes | None
    host: bytes | None
    proto: bytes | None
    port: bytes | None

    def original_url(self) -> bytes:
        scheme = b"https" if self.proto == b"https" else b"http"
        host = self.host or b""
        default = b"443" if scheme == b"https" else b"80"
        if self.port and self.port != default and self.port.isdigit() and b":" not in host:
            host += b":" + self.port
        return b"%s://%s%s" % (scheme, host, self.uri or b"/")

    def __str__(self) -> str:
        # The normalized path only: a query string may carry secrets.
        path = normalize_path((self.uri or b"/").decode("latin-1"))
        return f"{(self.method or b'-').decode('latin-1')} {path}"


class Pending(NamedTuple):
    """A decision waiting for I/O: the credential to verify and what the answer needs."""

    token: bytes
    rule: Rule
    fields: dict[bytes, bytes]
    started: float
    #: A public rule: a failure means anonymous, not a refusal.
    optional: bool


class VerifierApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.keys = KeySet(
            url=settings.jwks_url,
            file=settings.jwks_file,
            algorithms=settings.algorithms,
            refresh_interval=settings.jwks_refresh_interval,
            kid_interval=settings.jwks_kid_interval,
        )
        self.tokens = TokenVerifier(
            self.keys,
            issuer=settings.issuer,
            audience=settings.audience,
            algorithms=settings.algorithms,
            leeway=settings.leeway,
            cache_size=settings.token_cache_size,
            cache_bytes=settings.token_cache_bytes,
        )
        self.sessions = SessionStore(
            settings.redis_url,
            cache_size=settings.session_cache_size,
            cache_bytes=settings.session_cache_bytes,
            max_age=settings.session_cache_max_age,
        )
        self._token_cache = self.tokens.cache
        self._session_cache = self.sessions.cache
        self._policy = settings.policy
        self._rule_cache: dict[tuple[bytes | None, ...], Rule] = {}
        self._clean_names: set[bytes] = set(NGINX_SETS)
        self._cookie_name = settings.session_cookie
        login = settings.login_url
        self._login_base = None if login is None else login + ("&" if "?" in login else "?") + "rd="
        self._log_success = log.isEnabledFor(logging.DEBUG)
        self.ops = Operations(self.keys, self.tokens, self.sessions, self.metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI face (under uvicorn): `/verify` is decided right here; everything else
        is delegated."""
        if scope["type"] != "http" or scope["path"] != "/verify":
            await self._other(scope, receive, send)
            return
        answer = self.decide(scope["headers"])
        if type(answer) is Pending:
            answer = await self.settle(answer)
        await send(answer.start)  # type: ignore[union-attr]
        await send(EMPTY_BODY)

    def decide(self, headers: Sequence[tuple[bytes, bytes]]) -> Answer | Pending:
        """Decide a subrequest from its headers (names lower-case) without any I/O: the
        answer, or what `settle` needs when a token must be verified or a session read.

        Both servers (verifier/server.py and uvicorn through `__call__`) run this code.
        """
        started = time.perf_counter()
        fields = dict(headers)
        duplicate = False
        if len(fields) != len(headers):  # rare: some header came twice
            fields, duplicate = _merge_repeated(headers)
        get = fields.get
        if not fields.keys() <= self._clean_names:  # names not seen before: check them
            forged = self._check_names(fields)
            if forged is not None:
                return self._forged(forged, started)
        host = get(b"x-forwarded-host") or get(b"host")
        uri, method = get(b"x-original-uri"), get(b"x-original-method")
        named = get(b"x-authgate-policy")
        rule = self._rule_cache.get((named, host, uri, method))
        if rule is None:
            rule = self._select(named, host, uri, method)
        record: SessionRecord | None = None
        try:
            if rule.access is Access.AUTHENTICATED:
                authorization = get(b"authorization")
                if authorization is not None and authorization[:7] == b"Bearer " and not duplicate:
                    record = self._cached_identity(authorization[7:])
                if record is None:  # parse the credential fully; verify what isn't cached
                    token = self._credential(authorization, get(b"cookie"), duplicate)
                    record = self._cached_identity(token)
                    if record is None:
                        return Pending(token, rule, fields, started, False)
                if rule.restricted and not rule.allows(record.roles, record.scopes, record.kind):
                    raise Forbidden(
                        f"rule {rule.name}: missing role or scope, or not a {record.kind}"
                    )
            elif rule.access is Access.PUBLIC:
                # On a public rule identity is a courtesy: any failure means anonymous.
                try:
                    token = self._credential(get(b"authorization"), get(b"cookie"), duplicate)
                except AuthError:
                    return self._success(None, rule, started)
                record = self._cached_identity(token)
                if record is None:
                    return Pending(token, rule, fields, started, True)
            else:
                raise Forbidden(f"rule {rule.name} denies")
        except AuthError as exc:
            return self._refusal(exc, rule, fields, started)
        return self._success(record, rule, started)

    async def settle(self, pending: Pending) -> Answer:
        """Finish what `decide` could not: verify the token, read the session."""
        rule = pending.rule
        record: SessionRecord | None
        try:
            found = await self._identify(pending.token)
            if rule.restricted and not rule.allows(found.roles, found.scopes, found.kind):
                raise Forbidden(f"rule {rule.name}: missing role or scope, or not a {found.kind}")
            record = found
        except AuthError as exc:
            if not pending.optional:
                return self._refusal(exc, rule, pending.fields, pending.started)
            record = None
        return self._success(record, rule, pending.started)

    def _success(self, record: SessionRecord | None, rule: Rule, started: float) -> Answer:
        self.metrics.observe_success(time.perf_counter() - started)
        if self._log_success:
            log.debug("auth success: rule=%s sub=%s", rule.name, record.sub if record else "-")
        return ANONYMOUS if record is None else record.answer

    def _refusal(
        self, exc: AuthError, rule: Rule, fields: dict[bytes, bytes], started: float
    ) -> Answer:
        get = fields.get
        request = Request(
            get(b"x-original-uri"), get(b"x-original-method"),
            get(b"x-forwarded-host") or get(b"host"), get(b"x-forwarded-proto"),
            get(b"x-forwarded-port"),
        )  # fmt: skip
        answer = self._refuse(exc, rule, request)
        outcome = "error" if isinstance(exc, Unavailable) else "failure"
        self.metrics.observe(outcome, exc.status, time.perf_counter() - started)
        return answer

    def _check_names(self, fields: dict[bytes, bytes]) -> bytes | None:
        """A client's header in authgate's namespace (refused), or None; names that pass
        are remembered, so that nginx's usual set costs one set comparison."""
        for name in fields:
            if (name[:6] == b"x-auth" or name[:10] == b"x-original") and name not in NGINX_SETS:
                return name
        if len(self._clean_names) >= CLEAN_NAMES_SIZE:
            self._clean_names = set(NGINX_SETS)
        self._clean_names.update(fields)
        return None

    def _forged(self, name: bytes, started: float) -> Answer:
        """X-Auth-*, X-Authgate-* and X-Original-* are authgate's: a client that sends one
        (other than what nginx sets over it) is refused, so none reaches an upstream."""
        exc = Forbidden(f"client sent {name.decode('latin-1')[:64]}")
        answer = self._refuse(exc, NO_MATCH, Request(None, None, None, None, None))
        self.metrics.observe("failure", exc.status, time.perf_counter() - started)
        return answer

    def oversized(self, limit: int) -> Answer:
        """Request headers past the server's limit: a credential too large to read (401),
        so that nginx relays a refusal rather than turning an error into a 500."""
        exc = InvalidRequest(f"request headers over {limit} bytes")
        answer = self._refuse(exc, NO_MATCH, Request(None, None, None, None, None))
        self.metrics.observe("failure", exc.status, 0.0)
        return answer

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.ops.route(scope["path"])(send)
        elif scope["type"] == "lifespan":
            await self.ops.lifespan(receive, send)

    def _select(
        self, named: bytes | None, host: bytes | None, uri: bytes | None, method: bytes | None
    ) -> Rule:
        rule: Rule | None
        if uri is not None and (unsafe := unsafe_path(uri.decode("latin-1"))) is not None:
            log.info("auth failure: 403 %s", unsafe)
            rule = UNSAFE_PATH
        elif named:
            rule = self._policy.by_name.get(named.decode("latin-1"))
            if rule is None:
                log.error("auth error: nginx named unknown policy rule %r", named[:64])
        else:
            rule = self._policy.select(
                normalize_host((host or b"").decode("latin-1")),
                normalize_path((uri or b"/").decode("latin-1")),
                (method or b"GET").decode("latin-1").upper(),
            )
        if rule is None:
            rule = NO_MATCH
        if len(self._rule_cache) >= RULE_CACHE_SIZE:
            self._rule_cache.clear()
        self._rule_cache[named, host, uri, method] = rule
        return rule

    def _credential(
        self, authorization: bytes | None, cookie: bytes | None, duplicate: bool
    ) -> bytes:
        """The bearer token (RFC 6750 §2.1), else the session cookie's value."""
        if duplicate:
            raise InvalidRequest("more than one Authorization header")
        if authorization is not None:
            scheme, _, token = authorization.partition(b" ")
            if scheme.lower() != b"bearer":
                raise InvalidRequest("Authorization scheme is not Bearer")
            token = token.strip(b" ")
            if not token or b" " in token:
                raise InvalidRequest("malformed Bearer credential")
            return token
        if cookie is not None:
            try:
                value = find_cookie(cookie.decode("latin-1"), self._cookie_name)
            except AmbiguousCookie as exc:
                raise InvalidRequest(str(exc)) from None
            if value is not None:
                return value.encode("latin-1")
        raise NoCredential("no credential")

    def _cached_identity(self, token: bytes) -> SessionRecord | None:
        """The hot path: token and session both cached and current; no await, no I/O.

        Reads the two caches directly (a method call each would cost as much as the
        lookups); anything less than a clean hit goes to `_identify`, which also evicts.
        """
        now = time.time()
        claims = self._token_cache.get(token)
        if claims is None or claims.exp <= now:
            return None
        record = self._session_cache.get(claims.sid)
        if record is None or record.expires_at <= now or record.sub != claims.sub:
            return None
        metrics = self.metrics
        metrics.token_hits += 1
        metrics.session_hits += 1
        return record

    async def _identify(self, token: bytes) -> SessionRecord:
        now = time.time()
        claims: Claims | None = self.tokens.cached(token, now)
        if claims is None:
            self.metrics.token_misses += 1
            claims = await self.tokens.verify(token)
        else:
            self.metrics.token_hits += 1
        record = self.sessions.cached(claims.sid, now)
        if record is None:
            self.metrics.session_misses += 1
            record = await self.sessions.fetch(claims.sid)
            if record is None:
                raise InvalidToken("session ended")
        else:
            self.metrics.session_hits += 1
        if record.sub != claims.sub:
            raise InvalidToken("token and session disagree on sub")
        return record

    def _refuse(self, exc: AuthError, rule: Rule, request: Request) -> Answer:
        headers: list[tuple[bytes, bytes]] = []
        if exc.status == 401:
            challenge = 'Bearer realm="authgate"'
            if exc.error:
                challenge += f', error="{exc.error}", error_description="{exc}"'
            headers.append((b"www-authenticate", challenge.encode()))
            if self._login_base is not None:
                login = self._login_base + quote(request.original_url(), safe="")
                headers.append((b"x-authgate-login", login.encode()))
        elif isinstance(exc, Forbidden) and rule.scopes:
            scope = " ".join(sorted(rule.scopes))
            challenge = f'Bearer realm="authgate", error="insufficient_scope", scope="{scope}"'
            headers.append((b"www-authenticate", challenge.encode()))
        headers.append((b"content-length", b"0"))
        if isinstance(exc, Unavailable):
            log.error("auth error: %s (rule=%s %s)", exc, rule.name, request)
        else:
            log.info("auth failure: %d %s (rule=%s %s)", exc.status, exc, rule.name, request)
        return Answer(exc.status, headers)


def _merge_repeated(headers: Sequence[tuple[bytes, bytes]]) -> tuple[dict[bytes, bytes], bool]:
    """Headers by name when some came twice: Cookie lines joined (RFC 9113 §8.2.3 allows
    splitting them), and whether Authorization was repeated (ambiguous: refused)."""
    fields: dict[bytes, bytes] = {}
    duplicate = False
    for name, value in headers:
        if name in fields:
            if name == b"cookie":
                value = fields[name] + b"; " + value
            elif name == b"authorization":
                duplicate = True
        fields[name] = value
    return fields, duplicate


def create_app() -> VerifierApp:
    """Factory for uvicorn (one call per worker): settings from the environment."""
    settings = load_settings()
    configure_logging(settings.log_level)
    serving.configure(settings.header_timeout, settings.body_timeout)
    return VerifierApp(settings)
