"""The accepted API keys (settings and a keys file), compared in constant time by `guard`."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

from stt_common.settings import ApiSettings

log = logging.getLogger(__name__)


class NoApiKeysError(SystemExit):
    """Refuses to serve without keys unless development mode was asked for."""


def _keys_file(path: Path) -> list[str]:
    """One key per line; blank lines and lines starting with `#` are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        # The reason, never the content: a half-readable secrets file must not reach the log.
        raise NoApiKeysError(
            f"cannot read STT_API_KEYS_FILE {path}: {exc.__class__.__name__}"
        ) from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def accepted_keys(settings: ApiSettings) -> list[bytes]:
    listed = [k.get_secret_value() for k in settings.api_keys]
    if settings.api_keys_file is not None:
        listed += _keys_file(settings.api_keys_file)
    keys = list(dict.fromkeys(k.strip().encode() for k in listed if k.strip()))
    if not keys and not settings.allow_no_auth:
        raise NoApiKeysError(
            "no API key configured: set STT_API_KEYS (comma-separated) or STT_API_KEYS_FILE, "
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
