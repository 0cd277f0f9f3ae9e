"""Public keys, by `kid`, fetched from a JWKS URL or file: the verifier's view of the
issuer's keys, and the issuer's view of an OpenID Provider's.

Keys are fetched at start and every `refresh_interval`; a token with an unknown `kid`
triggers a refetch, so rotation is picked up without a restart. Refetches are bounded:
one fetch in flight at a time (concurrent callers share it), a given `kid` triggers at
most one fetch per `kid_interval`, and kid-triggered fetches are at least `min_interval`
apart, so a flood of made-up `kid`s costs the JWKS endpoint almost nothing. A failed refresh
keeps the keys already held.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from .errors import Unavailable
from .jose import Key, KeyFetchError, parse_jwks

log = logging.getLogger("authgate.jwks")

#: Bound on remembered unknown kids; past it the memory is cleared (a flood of random
#: kids must not grow memory, and the global `min_interval` still limits fetches).
MAX_REMEMBERED_KIDS = 10_000


class KeySet:
    def __init__(
        self,
        *,
        url: str | None,
        file: str | None,
        algorithms: frozenset[str],
        refresh_interval: float = 300.0,
        kid_interval: float = 5.0,
        min_interval: float = 1.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (url is None) == (file is None):
            raise ValueError("exactly one of url and file")
        self._source = url or file or ""
        self._client = (
            httpx.AsyncClient(timeout=timeout, follow_redirects=False) if url is not None else None
        )
        self._algorithms = algorithms
        self._refresh_interval = refresh_interval
        self._kid_interval = kid_interval
        self._min_interval = min_interval
        self._clock = clock
        self._keys: dict[str, Key] = {}
        self._inflight: asyncio.Future[None] | None = None
        self._last_kid_fetch = -float("inf")
        self._kid_attempts: dict[str, float] = {}
        self._refresher: asyncio.Task[None] | None = None
        self.fetches = 0
        self.last_error: str | None = None

    @property
    def ready(self) -> bool:
        return bool(self._keys)

    async def start(self) -> None:
        try:
            await self.refresh()
        except KeyFetchError as exc:
            log.error("jwks: initial load failed, retrying in background: %s", exc)
        self._refresher = asyncio.create_task(self._refresh_forever(), name="jwks-refresh")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        if self._client is not None:
            await self._client.aclose()

    async def lookup(self, kid: str) -> Key | None:
        """The key for `kid`, refetching the JWKS (within the bounds) when it is unknown.

        None: the kid is not among the issuer's keys. Raises `Unavailable` when the kid is
        unknown and a refetch it triggered (or joined) failed.
        """
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._inflight is None:
            now = self._clock()
            last = self._kid_attempts.get(kid)
            if last is not None and now - last < self._kid_interval:
                return None
            if now - self._last_kid_fetch < self._min_interval:
                return None
            if len(self._kid_attempts) >= MAX_REMEMBERED_KIDS:
                self._kid_attempts.clear()
            self._kid_attempts[kid] = now
            self._last_kid_fetch = now
        try:
            await self.refresh()
        except KeyFetchError as exc:
            raise Unavailable(f"jwks unavailable: {exc}") from exc
        return self._keys.get(kid)

    async def refresh(self) -> None:
        """Fetch the JWKS now, or join the fetch already under way."""
        if self._inflight is None:
            self._inflight = asyncio.get_running_loop().create_future()
            inflight = self._inflight
            try:
                self._keys = await self._fetch()
            except KeyFetchError as exc:
                self.last_error = str(exc)
                inflight.set_exception(exc)
                # Mark it retrieved: there may be no joiner, and an exception nobody
                # retrieves is reported as a leak.
                inflight.exception()
            except BaseException:
                inflight.cancel()  # joiners must not wait forever on a cancelled fetch
                raise
            else:
                self.last_error = None
                inflight.set_result(None)
            finally:
                self._inflight = None
        else:
            inflight = self._inflight
        await asyncio.shield(inflight)

    async def _fetch(self) -> dict[str, Key]:
        self.fetches += 1
        try:
            if self._client is None:
                document = await asyncio.to_thread(_read_json, self._source)
            else:
                response = await self._client.get(
                    self._source, headers={"Accept": "application/json"}
                )
                if response.status_code != 200:
                    raise KeyFetchError(f"GET {self._source} answered {response.status_code}")
                document = response.json()
        except (httpx.HTTPError, OSError, ValueError) as exc:
            raise KeyFetchError(f"{type(exc).__name__}: {exc}") from exc
        keys = parse_jwks(document, self._algorithms)
        added = keys.keys() - self._keys.keys()
        if added:
            log.info("jwks: %d key(s), new kid(s): %s", len(keys), ", ".join(sorted(added)))
        return keys

    async def _refresh_forever(self) -> None:
        while True:
            # Retry sooner while no key is held: nothing can be verified until then.
            await asyncio.sleep(self._refresh_interval if self._keys else 1.0)
            try:
                await self.refresh()
            except KeyFetchError as exc:
                log.warning("jwks: refresh failed, keeping %d key(s): %s", len(self._keys), exc)
            except Exception:  # never let the refresher die: try again next interval
                log.exception("jwks: unexpected error in refresh, keeping the keys held")


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
