"""fetch_media against real HTTP servers on 127.0.0.1 (and MinIO when the infra fixture runs)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from stt_common.media_bucket import BUCKET_REFUSED
from stt_common.settings import FetchSettings, MinioSettings
from stt_local import free_port
from stt_transcriber.errors import JobError
from stt_transcriber.media_fetch import fetch_media

Route = Callable[[BaseHTTPRequestHandler], None]
AUDIO = b"RIFF" + bytes(range(256)) * 64
NO_MINIO = MinioSettings(endpoint="minio.invalid:9000")


class Server(ThreadingHTTPServer):
    """Serves `routes` by path; counts connections and what each handler managed to send."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.connections = 0
        self.sent = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        route(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def body(data: bytes, status: int = 200, length: int | None = -1) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        if length is not None:
            h.send_header("Content-Length", str(len(data) if length == -1 else length))
        else:
            h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data)

    return route


def redirect(location: str, status: int = 302) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return route


def stream(total: int, pause: float = 0.0, delay_first: float = 0.0) -> Route:
    """A close-delimited body of `total` bytes (no Content-Length), recording what got sent."""

    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.flush()
        time.sleep(delay_first)
        source = BytesIO(b"x" * total)
        try:
            while chunk := source.read(64 * 1024):
                h.wfile.write(chunk)
                h.wfile.flush()
                h.server.sent += len(chunk)  # type: ignore[attr-defined]
                time.sleep(pause)
        except OSError:
            pass  # the client hung up, as it should

    return route


@pytest.fixture
def server() -> Iterator[Server]:
    yield from _serve()


@pytest.fixture
def other_server() -> Iterator[Server]:
    yield from _serve()


def _serve() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def settings(**overrides: Any) -> FetchSettings:
    values: dict[str, Any] = {
        "allow_hosts": ["127.0.0.1"],
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "total_timeout": 10.0,
        "max_redirects": 3,
        "max_bytes": 1024 * 1024,
    }
    values.update(overrides)
    return FetchSettings(**values)


async def fail(
    url: str, dest: Path, fetch: FetchSettings, minio: MinioSettings = NO_MINIO
) -> JobError:
    with pytest.raises(JobError) as caught:
        await fetch_media(url, dest, fetch, minio)
    assert not dest.exists(), "a failed download leaves no partial file"
    return caught.value


async def test_downloads_200(server: Server, tmp_path: Path) -> None:
    server.routes["/a.wav"] = body(AUDIO)
    dest = tmp_path / "media"
    assert await fetch_media(f"{server.base}/a.wav", dest, settings(), NO_MINIO) == dest
    assert dest.read_bytes() == AUDIO


async def test_close_delimited_body_without_content_length(server: Server, tmp_path: Path) -> None:
    server.routes["/a"] = body(AUDIO, length=None)
    dest = await fetch_media(f"{server.base}/a", tmp_path / "m", settings(), NO_MINIO)
    assert dest.read_bytes() == AUDIO


@pytest.mark.parametrize(
    ("status", "message", "error_type", "transient"),
    [
        (403, "Failed to download audio file: 403 Forbidden", "forbidden", False),
        (401, "Failed to download audio file: 401 Unauthorized", "forbidden", False),
        (404, "Failed to download audio file: 404 Not Found", "not_found", False),
        (410, "Failed to download audio file: 410 Gone", "not_found", False),
        (400, "Failed to download audio file: 400 Bad Request", "download", False),
        (503, "Failed to download audio file: 503 Service Unavailable", "download", True),
        (500, "Failed to download audio file: 500 Internal Server Error", "download", True),
        (429, "Failed to download audio file: 429 Too Many Requests", "download", True),
        (408, "Failed to download audio file: 408 Request Timeout", "download", True),
    ],
)
async def test_http_errors(
    server: Server, tmp_path: Path, status: int, message: str, error_type: str, transient: bool
) -> None:
    server.routes["/a"] = body(b"nope", status=status)
    err = await fail(f"{server.base}/a", tmp_path / "m", settings())
    assert (str(err), err.error_type, err.transient) == (message, error_type, transient)


async def test_empty_body(server: Server, tmp_path: Path) -> None:
    server.routes["/a"] = body(b"")
    err = await fail(f"{server.base}/a", tmp_path / "m", settings())
    assert (str(err), err.error_type, err.transient) == (
        "Media file is empty",
        "empty_media",
        False,
    )


async def test_size_limit_stops_reading_an_undeclared_body(server: Server, tmp_path: Path) -> None:
    total = 64 * 1024 * 1024
    server.routes["/big"] = stream(total)
    err = await fail(f"{server.base}/big", tmp_path / "m", settings(max_bytes=1024 * 1024))
    assert str(err) == "Media is larger than the limit of 1 MB (STT_FETCH_MAX_BYTES)"
    assert (err.error_type, err.transient) == ("too_large", False)
    time.sleep(0.2)
    assert server.sent < total / 2, "the client hung up instead of reading everything"


async def test_declared_length_over_the_limit_is_refused_early(
    server: Server, tmp_path: Path
) -> None:
    server.routes["/big"] = body(b"x" * 1000, length=10 * 1024 * 1024)
    err = await fail(f"{server.base}/big", tmp_path / "m", settings(max_bytes=1024 * 1024))
    assert err.error_type == "too_large"


async def test_a_small_declared_length_is_not_trusted(server: Server, tmp_path: Path) -> None:
    # Chunked: no Content-Length to trust; the limit still holds on what arrives.
    def chunked(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for _ in range(40):
            h.wfile.write(b"10000\r\n" + b"y" * 0x10000 + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")

    server.routes["/c"] = chunked
    err = await fail(f"{server.base}/c", tmp_path / "m", settings(max_bytes=1024 * 1024))
    assert err.error_type == "too_large"


async def test_follows_redirects(server: Server, tmp_path: Path) -> None:
    server.routes["/a"] = redirect("/b", 301)
    server.routes["/b"] = redirect(f"{server.base}/c", 307)
    server.routes["/c"] = body(AUDIO)
    dest = await fetch_media(f"{server.base}/a", tmp_path / "m", settings(), NO_MINIO)
    assert dest.read_bytes() == AUDIO


async def test_too_many_redirects(server: Server, tmp_path: Path) -> None:
    server.routes["/loop"] = redirect("/loop")
    err = await fail(f"{server.base}/loop", tmp_path / "m", settings(max_redirects=2))
    assert (
        str(err) == "Failed to download audio file: more than 2 redirects (STT_FETCH_MAX_REDIRECTS)"
    )
    assert (err.error_type, err.transient) == ("download", False)
    assert server.connections <= 3


async def test_redirect_to_loopback_is_refused_before_connecting(
    server: Server, other_server: Server, tmp_path: Path
) -> None:
    # The first server is allowed by name ("localhost"); its redirect target (127.0.0.1) is not.
    port = server.server_address[1]
    other_server.routes["/secret"] = body(b"internal")
    server.routes["/a"] = redirect(f"{other_server.base}/secret")
    err = await fail(
        f"http://localhost:{port}/a", tmp_path / "m", settings(allow_hosts=["localhost"])
    )
    assert str(err) == (
        f"Refused to fetch {other_server.base}/secret: the host is not a public address "
        "(not on STT_FETCH_ALLOW_HOSTS)"
    )
    assert err.detail == "127.0.0.1 is a loopback address"
    assert (err.error_type, err.transient) == ("blocked_url", False)
    assert server.connections == 1
    assert other_server.connections == 0


async def test_loopback_is_refused_without_allow_list(server: Server, tmp_path: Path) -> None:
    server.routes["/a"] = body(AUDIO)
    err = await fail(f"{server.base}/a", tmp_path / "m", settings(allow_hosts=[]))
    assert err.error_type == "blocked_url"
    assert err.detail == "127.0.0.1 is a loopback address"
    assert server.connections == 0


async def test_redirect_to_metadata_address_is_refused(server: Server, tmp_path: Path) -> None:
    server.routes["/a"] = redirect("http://u:p@169.254.169.254/latest/meta-data/?token=secret#x")
    err = await fail(f"{server.base}/a", tmp_path / "m", settings())
    assert str(err) == (
        "Refused to fetch http://169.254.169.254/latest/meta-data/: the host is not a public "
        "address (not on STT_FETCH_ALLOW_HOSTS)"
    )
    assert err.detail == "169.254.169.254 is a link-local address"


async def test_invalid_redirect_location(server: Server, tmp_path: Path) -> None:
    # httpx reports a malformed Location as a protocol error (treated as the server's fault).
    server.routes["/a"] = redirect("http://[::1")
    err = await fail(f"{server.base}/a", tmp_path / "m", settings())
    assert err.error_type == "download"
    assert "Invalid URL in location header" in str(err)


async def test_redirect_to_another_scheme_is_refused(server: Server, tmp_path: Path) -> None:
    server.routes["/a"] = redirect("file:///etc/passwd")
    err = await fail(f"{server.base}/a", tmp_path / "m", settings())
    assert err.error_type == "blocked_url"


async def test_minio_endpoint_host_is_always_allowed(server: Server, tmp_path: Path) -> None:
    # Presigned MinIO URLs point at the (private) MinIO endpoint.
    server.routes["/bucket/a.wav?X-Amz-Signature=abc"] = body(AUDIO)
    port = server.server_address[1]
    minio = MinioSettings(endpoint=f"localhost:{port}")
    url = f"http://localhost:{port}/bucket/a.wav?X-Amz-Signature=abc"
    dest = await fetch_media(url, tmp_path / "m", settings(allow_hosts=[]), minio)
    assert dest.read_bytes() == AUDIO


async def test_connection_refused_is_transient(tmp_path: Path) -> None:
    port = free_port()
    err = await fail(f"http://127.0.0.1:{port}/a", tmp_path / "m", settings())
    assert err.transient and err.error_type == "download"
    assert str(err).startswith("Failed to download audio file: ")
    assert str(err).endswith("(127.0.0.1)")


async def test_read_timeout_is_transient(server: Server, tmp_path: Path) -> None:
    server.routes["/slow"] = stream(1000, delay_first=2.0)
    err = await fail(f"{server.base}/slow", tmp_path / "m", settings(read_timeout=0.3))
    assert str(err) == "Failed to download audio file: no data for 0.3 s (127.0.0.1)"
    assert (err.error_type, err.transient) == ("timeout", True)


async def test_total_timeout_is_permanent(server: Server, tmp_path: Path) -> None:
    # Retrying would hold a worker just as long again (issue 12): the job fails at once.
    server.routes["/drip"] = stream(64 * 1024 * 20, pause=0.1)
    err = await fail(f"{server.base}/drip", tmp_path / "m", settings(total_timeout=0.5))
    assert str(err) == (
        "Failed to download audio file: not finished after 0.5 s (STT_FETCH_TOTAL_TIMEOUT) "
        "(127.0.0.1)"
    )
    assert (err.error_type, err.transient) == ("timeout", False)


def trickle(every: float) -> Route:
    """One byte every `every` seconds, forever: no read timeout ever fires."""

    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(500_000))
        h.end_headers()
        try:
            while True:
                h.wfile.write(b"x")
                h.wfile.flush()
                h.server.sent += 1  # type: ignore[attr-defined]
                time.sleep(every)
        except OSError:
            pass

    return route


async def test_a_trickle_below_the_minimum_rate_fails_after_the_grace_without_retry(
    server: Server, tmp_path: Path
) -> None:
    server.routes["/trickle"] = trickle(0.05)
    fetch = settings(min_bytes_per_second=1000, min_rate_grace=1.0, total_timeout=60)
    started = time.monotonic()
    err = await fail(f"{server.base}/trickle", tmp_path / "m", fetch)
    assert (err.error_type, err.transient) == ("timeout", False)
    assert "STT_FETCH_MIN_BYTES_PER_SECOND" in str(err) and str(err).endswith("(127.0.0.1)")
    assert time.monotonic() - started < 30  # far from the 60 s total timeout


async def test_a_cancelled_job_stops_its_download_at_the_next_chunk(
    server: Server, tmp_path: Path
) -> None:
    server.routes["/trickle"] = trickle(0.05)
    stop_at = time.monotonic() + 0.5
    dest = tmp_path / "m"
    with pytest.raises(JobError) as caught:
        await fetch_media(
            f"{server.base}/trickle", dest, settings(), NO_MINIO, lambda: time.monotonic() > stop_at
        )
    assert (caught.value.error_type, str(caught.value)) == ("cancelled", "Cancelled by client")
    assert not dest.exists()
    assert server.sent < 100  # ~0.5 s worth of bytes, not the 10 s read limit's


async def test_unknown_host_is_permanent(tmp_path: Path) -> None:
    err = await fail("http://no-such-host.invalid/a.wav", tmp_path / "m", settings())
    assert (
        str(err) == "Failed to download audio file: cannot resolve host name (no-such-host.invalid)"
    )
    assert err.error_type == "download"


async def test_unsupported_scheme(tmp_path: Path) -> None:
    err = await fail("ftp://example.com/a.wav", tmp_path / "m", settings())
    assert err.error_type == "download" and not err.transient


# ---- minio:// and s3:// against the test session's MinIO ------------------------------------


@pytest.fixture
def minio_infra(request: pytest.FixtureRequest) -> Any:
    try:
        return request.getfixturevalue("infra")
    except pytest.FixtureLookupError:
        pytest.skip("no `infra` fixture (MinIO) in this test session")


def _minio_settings(infra: Any) -> MinioSettings:
    return MinioSettings(
        endpoint=infra.minio_endpoint,
        access_key=infra.minio_access_key,
        secret_key=infra.minio_secret_key,
        bucket=infra.minio_bucket,
    )


@pytest.mark.infra
@pytest.mark.parametrize("scheme", ["minio", "s3"])
async def test_minio_object(minio_infra: Any, tmp_path: Path, scheme: str) -> None:
    from minio import Minio

    minio = _minio_settings(minio_infra)
    client = Minio(
        minio.endpoint, minio.access_key, minio.secret_key.get_secret_value(), secure=False
    )
    key = f"tests/{uuid.uuid4().hex}/a b.wav"
    client.put_object(minio.bucket, key, BytesIO(AUDIO), len(AUDIO))
    url = f"{scheme}://{minio.bucket}/{key.replace(' ', '%20')}"
    dest = await fetch_media(url, tmp_path / "m", settings(), minio)
    assert dest.read_bytes() == AUDIO

    err = await fail(url, tmp_path / "m", settings(max_bytes=1000), minio)
    assert err.error_type == "too_large"


@pytest.mark.infra
async def test_minio_missing_object(minio_infra: Any, tmp_path: Path) -> None:
    minio = _minio_settings(minio_infra)
    err = await fail(f"minio://{minio.bucket}/missing/x.wav", tmp_path / "m", settings(), minio)
    assert (
        str(err) == f"Failed to download audio file: object {minio.bucket}/missing/x.wav not found"
    )
    assert (err.error_type, err.transient) == ("not_found", False)


async def test_other_buckets_are_refused_before_any_request(tmp_path: Path) -> None:
    # The endpoint is unreachable: a request would fail differently (a transient download error).
    minio = MinioSettings(
        endpoint=f"127.0.0.1:{free_port()}", bucket="mine", allowed_buckets="also-mine"
    )
    for url in ("minio://other/a.wav", "s3://Mine/a.wav", "minio://x@mine/a.wav"):
        err = await fail(url, tmp_path / "m", settings(), minio)
        assert (err.error_type, err.transient) == ("blocked_url", False), url
        assert str(err) == BUCKET_REFUSED
    err = await fail("minio://also-mine/a.wav", tmp_path / "m", settings(), minio)
    assert err.error_type == "download"  # allowed: it got as far as the (closed) port


async def test_minio_unreachable_is_transient(tmp_path: Path) -> None:
    minio = MinioSettings(
        endpoint=f"127.0.0.1:{free_port()}", access_key="a", secret_key="b", bucket="bucket"
    )
    err = await fail("minio://bucket/a.wav", tmp_path / "m", settings(), minio)
    assert err.transient and err.error_type == "download"
    assert str(err) == (
        "Failed to download audio file: Failed to establish a new connection: "
        f"[Errno 111] Connection refused ({minio.endpoint})"
    )
