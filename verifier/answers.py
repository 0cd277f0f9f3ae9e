"""An answer to a subrequest, ready for either server: the ASGI start message (uvicorn) and
the HTTP/1.1 response head as bytes (verifier/server.py), both built once.

A live session's 204 is built when its record is cached, so the hot path sends bytes it
already holds. Answers carry no body: 204 has none, and refusals say `Content-Length: 0`.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

Headers = tuple[tuple[bytes, bytes], ...]


class Answer:
    __slots__ = ("headers", "raw", "start", "status")

    def __init__(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.headers: Headers = tuple(headers)
        self.start: dict[str, object] = {
            "type": "http.response.start", "status": status, "headers": self.headers,
        }  # fmt: skip
        self.raw = head(status, self.headers)


def head(status: int, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The response head: status line, header lines, the empty line."""
    lines = [b"HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase.encode())]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def closing(raw: bytes) -> bytes:
    """`raw` with `Connection: close` added (the last answer on a connection)."""
    return raw[:-2] + b"connection: close\r\n\r\n"


#: The 204 of a public rule without a (valid) credential.
ANONYMOUS = Answer(204, ())
