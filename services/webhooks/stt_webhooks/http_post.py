"""One delivery attempt: the SSRF check, then a POST over a connection pinned to the checked
addresses (the same guard as media downloads, with its own allow list).

Redirects are not followed (a receiver moved elsewhere is a configuration error), and the answer's
body is never read, so a hostile receiver cannot make the sender download anything.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import httpx

from stt_common.pinned_transport import Pins, origin_key, pinned_client
from stt_common.settings import WebhookSettings
from stt_common.url_guard import refusal, resolve

RETRYABLE = frozenset({408, 429})


class AttemptFailed(Exception):
    """Why an attempt failed; `permanent` failures are dead-lettered without further tries."""

    def __init__(
        self, message: str, permanent: bool, result: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.result = result  # the metric label: 3xx, 4xx, 5xx, error, refused
        self.retry_after = retry_after


def shown(url: str) -> str:
    """`url` for logs and dead letters: no credentials, query (tokens) or fragment."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}"


async def guard(url: str, allow_hosts: list[str], pins: Pins) -> None:
    """Refuse private targets not on STT_WEBHOOK_ALLOW_HOSTS; pin the host to what was checked."""
    try:
        # The host exactly as httpx will connect to it, so parsers cannot disagree.
        target, port = origin_key(httpx.URL(url))
    except (ValueError, httpx.InvalidURL, UnicodeError):
        raise AttemptFailed(f"invalid host or port in {shown(url)}", True, "refused") from None
    try:
        addresses = await resolve(target, port)
    except OSError as exc:
        again = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
        raise AttemptFailed(f"cannot resolve {target}", not again, "error") from exc
    reason = refusal(target, addresses, allow_hosts)
    if reason is not None:
        raise AttemptFailed(
            f"Refused to deliver to {shown(url)}: {reason} (not on STT_WEBHOOK_ALLOW_HOSTS)",
            True,
            "refused",
        )
    pins[(target, port)] = addresses


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def check_status(response: httpx.Response) -> None:
    code = response.status_code
    if 200 <= code < 300:
        return
    what = f"{shown(str(response.url))} answered {code} {response.reason_phrase}".rstrip()
    if 300 <= code < 400:
        raise AttemptFailed(f"{what} (redirects are not followed)", True, "3xx")
    if code >= 500 or code in RETRYABLE:
        raise AttemptFailed(what, False, f"{code // 100}xx", _retry_after(response))
    raise AttemptFailed(what, True, f"{code // 100}xx")


async def post(url: str, body: bytes, headers: dict[str, str], settings: WebhookSettings) -> None:
    """POST `body` to `url`; returns on a 2xx, raises AttemptFailed otherwise."""
    pins: Pins = {}  # filled by guard(); the transport connects to nothing else
    await guard(url, settings.allow_hosts, pins)
    timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
    try:
        async with (
            asyncio.timeout(settings.timeout),
            pinned_client(pins, timeout) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            check_status(response)
    except (TimeoutError, httpx.TimeoutException):
        raise AttemptFailed(
            f"{shown(url)}: no answer within {settings.timeout:g} s (STT_WEBHOOK_TIMEOUT)",
            False,
            "error",
        ) from None
    except httpx.HTTPError as exc:  # refused, reset, TLS, protocol errors
        raise AttemptFailed(
            f"{shown(url)}: {str(exc) or type(exc).__name__}", False, "error"
        ) from exc
