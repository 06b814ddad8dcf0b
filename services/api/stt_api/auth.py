"""The accepted API keys (settings and a keys file), compared in constant time by `guard`.

Each entry is `key` (tenant `default`), `tenant:key`, or `tenant:key:admin`
(`tenants.split_key_entry`). The key names the caller: the tenant its jobs belong to, and whether
it may read and list every tenant's jobs.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from stt_common import tenants
from stt_common.settings import ApiSettings

log = logging.getLogger(__name__)
SCOPE_KEY = "stt.caller"  # where the guard leaves the request's `Caller` in the ASGI scope


class NoApiKeysError(SystemExit):
    """Refuses to serve without keys unless development mode was asked for."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request comes from, as its key says."""

    tenant: str
    admin: bool = False


DEVELOPMENT_CALLER = Caller(tenants.DEFAULT)  # without keys (STT_ALLOW_NO_AUTH=true)


@dataclass(frozen=True, slots=True)
class ApiKey:
    secret: bytes
    caller: Caller


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


def parse_entry(entry: str, position: int) -> ApiKey:
    """`key`, `tenant:key` or `tenant:key:admin`. Errors name the entry by its position, never
    by its text (it is a secret)."""
    tenant, secret, admin = tenants.split_key_entry(entry)
    if tenant is None:
        return ApiKey(secret.encode(), Caller(tenants.DEFAULT))
    if not re.match(tenants.PATTERN, tenant):
        raise NoApiKeysError(
            f"API key entry #{position}: tenant must be 1-32 characters of a-z, 0-9, _ and -"
        )
    if not secret:
        raise NoApiKeysError(f"API key entry #{position} has an empty key")
    return ApiKey(secret.encode(), Caller(tenant, admin))


def accepted(settings: ApiSettings) -> list[ApiKey]:
    """Every configured key with its caller. Raises NoApiKeysError for none (unless development
    mode) and for one key given to two different callers."""
    listed = [k.get_secret_value() for k in settings.api_keys]
    if settings.api_keys_file is not None:
        listed += _keys_file(settings.api_keys_file)
    entries = list(dict.fromkeys(k.strip() for k in listed if k.strip()))
    keys = [parse_entry(entry, i) for i, entry in enumerate(entries, 1)]
    by_secret: dict[bytes, Caller] = {}
    for key in keys:
        if by_secret.setdefault(key.secret, key.caller) != key.caller:
            raise NoApiKeysError("one API key is listed for two tenants or roles")
    if not keys and not settings.allow_no_auth:
        raise NoApiKeysError(
            "no API key configured: set STT_API_KEYS (comma-separated) or STT_API_KEYS_FILE, "
            "or STT_ALLOW_NO_AUTH=true for local development only"
        )
    if not keys:
        log.warning("AUTHENTICATION IS OFF (STT_ALLOW_NO_AUTH=true): anyone can submit jobs")
    return list({k.secret: k for k in keys}.values())


def accepted_keys(settings: ApiSettings) -> list[bytes]:
    """The accepted key values alone."""
    return [key.secret for key in accepted(settings)]


def match(candidate: str, keys: list[ApiKey]) -> Caller | None:
    """The caller whose key is `candidate`, or None."""
    given = candidate.encode()
    # Check every key so the time taken does not reveal which one was close.
    found: Caller | None = None
    for key in keys:
        if hmac.compare_digest(given, key.secret):
            found = key.caller
    return found


def key_matches(candidate: str, keys: list[ApiKey]) -> bool:
    return match(candidate, keys) is not None
