"""Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"): a
browser that signed in to an account gets a cookie naming that account and a random
device id, MACed with a server secret. A sign-in that brings a valid one for the account
it signs in to is throttled in a bucket of that device alone, so an attacker failing at
the account elsewhere never slows the owner's own browsers (issue 12, finding 9).

Value: `v1.<account key>.<device id>.<HMAC-SHA256, base64url>`, checked in constant time.
The secret is `<keys_dir>/device-cookie.secret` (mode 0600), made on first start and
shared by every issuer that shares the keys directory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

MAC_KEY_FILE = "device-cookie.secret"
#: Seconds; a device stays known this long after its last sign-in.
LIFETIME = 180 * 86400
VERSION = "v1"


def load_secret(keys_dir: str) -> bytes:
    """The secret in `keys_dir`, made (atomically, 0600) when there is none."""
    path = Path(keys_dir) / MAC_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


class DeviceCookies:
    def __init__(self, secret: bytes, *, secure: bool) -> None:
        self._secret = secret
        # __Host-: only this host, Secure, path / (RFC 6265bis §4.1.3.2), as the session's.
        self.name = "__Host-authgate_device" if secure else "authgate_device"

    def _mac(self, account: str, device: str) -> str:
        message = f"device:{VERSION}.{account}.{device}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, account: str) -> str:
        device = secrets.token_urlsafe(16)
        return f"{VERSION}.{account}.{device}.{self._mac(account, device)}"

    def device(self, value: str, account: str) -> str | None:
        """The device id of a genuine cookie for `account`; None for anything else."""
        parts = value.split(".")
        if len(parts) != 4 or parts[0] != VERSION or len(value) > 200:
            return None
        _, named, device, mac = parts
        genuine = hmac.compare_digest(mac.encode(), self._mac(named, device).encode())
        if not genuine or not hmac.compare_digest(named.encode(), account.encode()):
            return None
        return device
