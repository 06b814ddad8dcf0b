"""Downloads a job's media to a local file: http(s) with httpx, minio:// and s3:// with MinIO.

Every limit in `FetchSettings` is enforced while reading rather than trusted from headers, and
every failure becomes a `JobError` whose message names the setting or the server's answer.
"""

from __future__ import annotations

import asyncio
import socket
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from stt_common.pinned_transport import Pins, origin_key, pinned_client
from stt_common.settings import FetchSettings, MinioSettings
from stt_common.url_guard import refusal, resolve
from stt_transcriber.download_pace import Pace, ShouldStop, too_slow_total
from stt_transcriber.errors import DOWNLOAD_FAILED, JobError, empty_media, too_large
from stt_transcriber.object_fetch import fetch_object, minio_origin

CHUNK = 64 * 1024
PREFIX = DOWNLOAD_FAILED
NOT_PUBLIC = "the host is not a public address"


async def fetch_media(
    url: str,
    dest: Path,
    fetch: FetchSettings,
    minio: MinioSettings,
    should_stop: ShouldStop | None = None,
) -> Path:
    """Download `url` to the file `dest` and return it; a partial file is removed on failure.

    `should_stop` (the job was cancelled) is asked at every chunk, as are the rate and
    deadline limits (`download_pace`)."""
    scheme = urlsplit(url).scheme.lower()
    try:
        if scheme in ("minio", "s3"):
            # The MinIO client is synchronous; its limits are enforced inside the thread.
            await asyncio.to_thread(fetch_object, url, dest, fetch, minio, should_stop)
        elif scheme in ("http", "https"):
            await _fetch_http(url, dest, fetch, minio_origin(minio), should_stop)
        else:
            raise JobError(
                f"{PREFIX}: unsupported URL scheme {scheme!r} (use http, https, minio or s3)",
                "download",
            )
    except BaseException:
        dest.unlink(missing_ok=True)  # noqa: ASYNC240 - a local unlink, not worth a thread
        raise
    return dest


async def _fetch_http(
    url: str,
    dest: Path,
    fetch: FetchSettings,
    minio: tuple[str, int],
    should_stop: ShouldStop | None,
) -> None:
    timeout = httpx.Timeout(fetch.read_timeout, connect=fetch.connect_timeout)
    host = urlsplit(url).hostname or ""
    pins: Pins = {}  # filled by _guard; the transport connects to nothing else
    try:
        async with (
            asyncio.timeout(fetch.total_timeout),
            pinned_client(pins, timeout) as client,
        ):
            current = url
            for _ in range(fetch.max_redirects + 1):
                host = await _guard(current, fetch.allow_hosts, minio, pins)
                async with client.stream("GET", current) as response:
                    if response.is_redirect:
                        current = str(response.url.join(response.headers["location"]))
                        continue
                    _check_status(response)
                    await _save(response, dest, fetch.max_bytes, Pace(fetch, host, should_stop))
                    return
            raise JobError(
                f"{PREFIX}: more than {fetch.max_redirects} redirects (STT_FETCH_MAX_REDIRECTS)",
                "download",
            )
    except TimeoutError:  # not retried: the same server would hold the worker as long again
        raise too_slow_total(fetch, host) from None
    except httpx.TimeoutException as exc:
        what = (
            f"no connection within {fetch.connect_timeout:g} s"
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            else f"no data for {fetch.read_timeout:g} s"
        )
        raise JobError(f"{PREFIX}: {what} ({host})", "timeout", transient=True) from exc
    except httpx.HTTPError as exc:  # connection refused or reset, protocol errors, TLS
        what = str(exc) or type(exc).__name__
        raise JobError(f"{PREFIX}: {what} ({host})", "download", transient=True) from exc


def _shown(url: str) -> str:
    """`url` for an error message: without credentials, query (presigned tokens) or fragment."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    try:
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:
        pass
    return f"{parts.scheme}://{netloc}{parts.path}"


async def _guard(url: str, allow: list[str], minio: tuple[str, int], pins: Pins) -> str:
    """Check `url` (the first or a redirect's) may be fetched and pin its host to the checked
    addresses; returns its host."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise JobError(
            f"Refused to fetch {_shown(url)}: only http(s) URLs with a host", "blocked_url"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
        # The host exactly as httpx will connect to it, so parser differences cannot split
        # what is checked from what is fetched.
        target, port = origin_key(httpx.URL(url))
    except (ValueError, httpx.InvalidURL, UnicodeError):
        raise JobError(f"{PREFIX}: invalid host or port in {_shown(url)}", "download") from None
    try:
        addresses = await resolve(target, port)
    except OSError as exc:
        transient = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
        raise JobError(
            f"{PREFIX}: cannot resolve host name ({host})", "download", transient
        ) from exc
    # Presigned URLs name the (private) MinIO endpoint: that exact host and port is allowed.
    on_minio = (target.rstrip("."), port) == minio
    reason = None if on_minio else refusal(target, addresses, allow)
    if reason is not None:
        # The client learns only that it was refused; what the name resolved to (an internal
        # address, say) goes to the worker's log alone.
        raise JobError(
            f"Refused to fetch {_shown(url)}: {NOT_PUBLIC} (not on STT_FETCH_ALLOW_HOSTS)",
            "blocked_url",
            detail=reason,
        )
    pins[(target, port)] = addresses
    return host


def _check_status(response: httpx.Response) -> None:
    code = response.status_code
    if 200 <= code < 300:
        return
    reason = response.reason_phrase
    if not reason:
        try:
            reason = HTTPStatus(code).phrase
        except ValueError:
            reason = "Error"
    if code in (401, 403):
        error_type = "forbidden"
    elif code in (404, 410):
        error_type = "not_found"
    else:
        error_type = "download"
    transient = code >= 500 or code in (408, 429)
    raise JobError(f"{PREFIX}: {code} {reason}", error_type, transient)


async def _save(response: httpx.Response, dest: Path, max_bytes: int, pace: Pace) -> None:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)  # refused before reading; a smaller claim is not trusted
    with dest.open("wb") as out:
        # No chunk size: each read is handed over as it arrives, so a trickle is judged by
        # `pace` at every byte it sends instead of once per full chunk.
        async for chunk in response.aiter_bytes():
            pace.add(len(chunk))
            if pace.total > max_bytes:
                raise too_large(max_bytes)
            out.write(chunk)  # local disk; small blocking writes are cheaper than a thread hop
    if pace.total == 0:
        raise empty_media()
