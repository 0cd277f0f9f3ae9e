"""The issuer's errors: a machine code (RFC 6749 §5.2 where one fits) and an HTTP status.

Raised anywhere in a request; the app answers them as `{"error", "error_description"}`
JSON (or a small HTML page on browser routes). Descriptions never carry secrets.
"""

from __future__ import annotations


class IssuerError(Exception):
    status = 400
    error = "invalid_request"
    #: The WWW-Authenticate scheme of a 401 answer.
    challenge = "Bearer"

    def __init__(self, description: str = "", *, retry_after: int | None = None) -> None:
        self.description = description
        self.retry_after = retry_after
        super().__init__(description or self.error)


class InvalidRequest(IssuerError):
    pass


class InvalidGrant(IssuerError):
    error = "invalid_grant"


class InvalidScope(IssuerError):
    error = "invalid_scope"


class UnsupportedGrantType(IssuerError):
    error = "unsupported_grant_type"


class InvalidClient(IssuerError):
    """RFC 6749 §5.2: 401; the challenge names HTTP Basic when the client used it."""

    status = 401
    error = "invalid_client"

    def __init__(self, description: str = "", *, basic: bool = False) -> None:
        super().__init__(description)
        self.challenge = "Basic" if basic else "Bearer"


class UnauthorizedClient(IssuerError):
    error = "unauthorized_client"


# RFC 8628 §3.5: what a device polling the token endpoint is told.
class AuthorizationPending(IssuerError):
    error = "authorization_pending"


class SlowDown(IssuerError):
    error = "slow_down"


class ExpiredToken(IssuerError):
    error = "expired_token"


class AccessDenied(IssuerError):
    error = "access_denied"


class Unauthenticated(IssuerError):
    status = 401
    error = "invalid_token"


class Forbidden(IssuerError):
    status = 403
    error = "forbidden"


class CsrfFailed(Forbidden):
    error = "csrf_failed"


class NotFound(IssuerError):
    status = 404
    error = "not_found"


class PayloadTooLarge(IssuerError):
    status = 413
    error = "request_too_large"


class Conflict(IssuerError):
    status = 409
    error = "conflict"


class RateLimited(IssuerError):
    status = 429
    error = "rate_limited"


class LoginFailed(IssuerError):
    """A browser login that failed at the provider or at a check of ours; `code` is the
    stable code (the providers' codes, invalid_state, account_suspended, …)."""

    status = 400
    error = "login_failed"

    def __init__(self, code: str, description: str = "", *, status: int = 400) -> None:
        super().__init__(description)
        self.error = code
        self.status = status


class Unavailable(IssuerError):
    status = 503
    error = "temporarily_unavailable"
