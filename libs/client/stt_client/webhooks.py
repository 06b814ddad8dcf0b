"""Checking a webhook from stt: the `X-STT-Signature` header against the raw request body.

The header is `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`; a receiver may see
several `v1=` values (while a secret is being rotated) and any one that matches is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

SIGNATURE_HEADER: Final = "X-STT-Signature"


def verify_webhook(body: bytes, signature_header: str, secret: str, tolerance: int = 300) -> bool:
    """True when `signature_header` signs exactly `body` with `secret`, at most `tolerance`
    seconds from now (either way: older ones could be replays).

    Pass the body bytes as received, before any JSON parsing: re-encoding changes them.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in signature_header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates or abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    digest = expected.hexdigest().encode()
    # compare_digest: the time taken does not tell an attacker how much of a guess was right
    # (bytes, because a str with non-ASCII characters would raise instead of answering False).
    return any(hmac.compare_digest(digest, c.lower().encode()) for c in candidates)
