"""The issuer's signing keys: files in a directory, rotated without downtime.

`keys_dir/keys.json` lists the keys, each with when it starts signing and when it stops
being published; `keys_dir/<kid>.pem` holds each private key (mode 0600). `rotate` adds a
key that is published at once but signs only after `publish_ahead` seconds (so every
verifier has fetched it first), and retires the old one `longest_token_life` seconds
after the new one takes over (no token it signed is still valid by then).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from authgate.jose import Key

from .signing import SigningKey

log = logging.getLogger("authgate.issuer")


@dataclass(frozen=True)
class KeyEntry:
    kid: str
    algorithm: str
    created: float
    signs_from: float
    retire_at: float | None = None


class KeyStore:
    def __init__(self, directory: str, *, clock: Callable[[], float] = time.time) -> None:
        self._dir = Path(directory)
        self._clock = clock
        self._entries: list[KeyEntry] = []
        self._keys: dict[str, SigningKey] = {}
        self._mtime = -1.0

    @property
    def _index(self) -> Path:
        return self._dir / "keys.json"

    def ensure(self, algorithm: str) -> None:
        """Make a first key when there is none (local use), with a clear log line."""
        if self._index.exists():
            self._load()
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        key = self._add(algorithm, signs_from=self._clock(), entries=[])
        log.warning(
            "keys: no signing keys in %s; generated %s key %s", self._dir, algorithm, key.kid
        )

    def rotate(
        self, algorithm: str, *, publish_ahead: float, longest_token_life: float
    ) -> KeyEntry:
        self._load()
        now = self._clock()
        signs_from = now + publish_ahead
        entries = [
            e
            if e.retire_at is not None
            else KeyEntry(**{**asdict(e), "retire_at": signs_from + longest_token_life})
            for e in self._entries
            if e.retire_at is None or e.retire_at > now  # drop the long retired
        ]
        new = self._add(algorithm, signs_from=signs_from, entries=entries)
        return next(e for e in self._entries if e.kid == new.kid)

    def signing_key(self) -> SigningKey:
        """The newest key whose time to sign has come."""
        self._reload_if_changed()
        now = self._clock()
        usable = [e for e in self._entries if e.signs_from <= now]
        if not usable:
            raise RuntimeError(f"no signing key usable yet in {self._dir}")
        return self._keys[max(usable, key=lambda e: e.signs_from).kid]

    def published(self) -> list[SigningKey]:
        """Keys in the JWKS: every key not yet retired (including those not signing yet)."""
        self._reload_if_changed()
        now = self._clock()
        return [
            self._keys[e.kid] for e in self._entries if e.retire_at is None or e.retire_at > now
        ]

    async def lookup(self, kid: str) -> Key | None:
        """authgate.tokens.KeySource: the issuer checks its own tokens with its own keys."""
        for key in self.published():
            if key.kid == kid:
                return Key(kid=kid, algorithm=key.algorithm, key=key.private_key.public_key())
        return None

    def entries(self) -> list[KeyEntry]:
        self._reload_if_changed()
        return list(self._entries)

    def _add(self, algorithm: str, *, signs_from: float, entries: list[KeyEntry]) -> SigningKey:
        key = SigningKey.generate(algorithm)
        pem = self._dir / f"{key.kid}.pem"
        fd = os.open(pem, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.to_pem())
        entry = KeyEntry(
            kid=key.kid, algorithm=algorithm, created=self._clock(), signs_from=signs_from
        )
        self._write([*entries, entry])
        self._load()
        return key

    def _write(self, entries: list[KeyEntry]) -> None:
        tmp = self._index.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": [asdict(e) for e in entries]}, indent=2))
        tmp.replace(self._index)  # atomic: a running issuer never reads half a file

    def _reload_if_changed(self) -> None:
        try:
            mtime = self._index.stat().st_mtime
        except OSError:
            return
        if mtime != self._mtime:
            self._load()

    def _load(self) -> None:
        self._mtime = self._index.stat().st_mtime
        document: Any = json.loads(self._index.read_text())
        entries = [KeyEntry(**e) for e in document["keys"]]
        keys = {}
        for entry in entries:
            pem = (self._dir / f"{entry.kid}.pem").read_bytes()
            keys[entry.kid] = SigningKey.from_pem(pem, kid=entry.kid)
        self._entries, self._keys = entries, keys
