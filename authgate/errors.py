"""Why a credential was not accepted: each error carries an RFC 6750 error code and the
HTTP status it stands for. Raised by token checking (`authgate.tokens`), which the
verifier and the issuer share, and by the verifier's own decisions.

The verifier answers 2xx, 401 or 403 for anything a client can send, and 503 only when one
of its own dependencies (Redis, the JWKS) fails (STYLE.md, "Errors carry their meaning").
"""

from __future__ import annotations


class AuthError(Exception):
    """Base of every decision-ending error. `str(exc)` is a reason safe to log."""

    status = 401
    error = "invalid_token"


class NoCredential(AuthError):
    """No bearer token and no session cookie: RFC 6750 §3.1 says to send no error code."""

    error = ""


class InvalidRequest(AuthError):
    """The credential is malformed or ambiguous (RFC 6750 §3.1 `invalid_request`).

    Answered with 401, not RFC 6750's 400: nginx `auth_request` turns any status but
    2xx, 401 and 403 into a 500 for the client.
    """

    error = "invalid_request"


class InvalidToken(AuthError):
    """Expired, revoked, forged or otherwise unacceptable (RFC 6750 §3.1 `invalid_token`)."""

    error = "invalid_token"


class Forbidden(AuthError):
    """A known user whom the policy refuses."""

    status = 403
    error = "insufficient_scope"


class Unavailable(AuthError):
    """A dependency (Redis, the JWKS) failed and no cached answer applies."""

    status = 503
    error = "temporarily_unavailable"
