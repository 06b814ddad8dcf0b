"""`X-API-Key` authentication against the keys in settings, compared in constant time."""

from __future__ import annotations

import hmac
import logging

from fastapi import HTTPException, Request, status
from fastapi.security import APIKeyHeader

from stt_common.settings import ApiSettings

log = logging.getLogger(__name__)
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Your API key")


class NoApiKeysError(SystemExit):
    """Refuses to serve without keys unless development mode was asked for."""


def accepted_keys(settings: ApiSettings) -> list[bytes]:
    keys = [k.get_secret_value().encode() for k in settings.api_keys if k.get_secret_value()]
    if not keys and not settings.allow_no_auth:
        raise NoApiKeysError(
            "no API key configured: set STT_API_KEYS (comma-separated), "
            "or STT_ALLOW_NO_AUTH=true for local development only"
        )
    if not keys:
        log.warning("AUTHENTICATION IS OFF (STT_ALLOW_NO_AUTH=true): anyone can submit jobs")
    return keys


def key_matches(candidate: str, keys: list[bytes]) -> bool:
    given = candidate.encode()
    # Check every key so the time taken does not reveal which one was close.
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key)
    return found


async def require_api_key(request: Request) -> str | None:
    keys: list[bytes] = request.app.state.api_keys
    if not keys:
        return None
    candidate = await api_key_header(request)
    if not candidate:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Missing X-API-Key header")
    if not key_matches(candidate, keys):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid API key")
    return candidate
