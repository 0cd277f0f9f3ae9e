"""Every error the service answers with, as RFC 9457 problem details.

One base exception carries the machine code (the last part of `type`) and the status; the
app turns any of them, and Starlette's own 404/405, into `application/problem+json`.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

MEDIA_TYPE = "application/problem+json"
#: RFC 9457 §3.1.1: a URI naming the problem type. A tag URI (RFC 4151), as the gateway's
#: idempotency plugin uses: it names the type and nobody tries to fetch it.
TYPE_BASE = "tag:authgate,2026:members/"


class Problem(Exception):
    code = "internal"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    def body(self) -> dict[str, Any]:
        return {"type": TYPE_BASE + self.code, "title": self.title, "status": self.status,
                "detail": self.detail, **self.extensions}  # fmt: skip


class Unauthenticated(Problem):
    code, status, title = "unauthenticated", 401, "Not signed in"


class Forbidden(Problem):
    code, status, title = "forbidden", 403, "Not yours"


class NotFound(Problem):
    code, status, title = "not-found", 404, "No such resource"


class MethodNotAllowed(Problem):
    code, status, title = "method-not-allowed", 405, "Method not allowed"


class MalformedBody(Problem):
    code, status, title = "malformed-body", 400, "Body is not valid JSON"


class TooLarge(Problem):
    code, status, title = "too-large", 413, "Body too large"


class UnsupportedMediaType(Problem):
    code, status, title = "unsupported-media-type", 415, "Body must be JSON"


class Invalid(Problem):
    code, status, title = "invalid", 422, "Invalid member"


class Unavailable(Problem):
    code, status, title = "unavailable", 503, "Storage unavailable"


def response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        problem.body(), status_code=problem.status, media_type=MEDIA_TYPE, headers=headers
    )


async def on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)  # registered for Problem only
    return response(exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's routing errors (unknown path, wrong method) in the same shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return response(
            MethodNotAllowed(f"{request.method} is not allowed here"),
            headers=dict(exc.headers or {}),
        )
    if exc.status_code == 404:
        return response(NotFound(f"nothing at {request.url.path}"))
    problem = Problem(str(exc.detail))
    problem.status, problem.title, problem.code = exc.status_code, str(exc.detail), "http"
    return response(problem)


async def on_error(request: Request, exc: Exception) -> Response:
    """Anything unexpected: a 500 that says nothing of the cause (it is in the log)."""
    return response(Problem("the service failed; the cause is in its log"))
