"""SSRF: private targets are refused before any connection, proven by listeners that record.

Name resolution is faked by patching `socket.getaddrinfo` (which both the URL guard and, without
pinning, httpx would use), so "a public name that resolves to 127.0.0.1" and DNS rebinding run
without any DNS server.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpcore
import pytest

from stt_common import pinned_transport
from stt_common.settings import FetchSettings, MinioSettings
from stt_transcriber.errors import JobError
from stt_transcriber.media_fetch import NOT_PUBLIC, fetch_media

NO_MINIO = MinioSettings(endpoint="minio.invalid:9000")
AUDIO = b"RIFF-not-really-audio" * 100


class Listener:
    """A TCP listener that records every connection it accepts, then closes it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family)
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.accepted: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(peer)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class Media(ThreadingHTTPServer):
    """Serves AUDIO at /audio and redirects /go to `self.location`."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), _Handler)
        self.location = ""
        self.hits = 0
        self.port: int = self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    server: Media

    def do_GET(self) -> None:
        self.server.hits += 1
        if self.path == "/go":
            self.send_response(302)
            self.send_header("Location", self.server.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(AUDIO)))
        self.end_headers()
        self.wfile.write(AUDIO)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[Listener]:
    srv = Listener()
    yield srv
    srv.close()


@pytest.fixture
def listener6() -> Iterator[Listener]:
    try:
        srv = Listener("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    yield srv
    srv.close()


def _serve(host: str) -> Iterator[Media]:
    srv = Media(host)
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def media() -> Iterator[Media]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection httpx's transport opens (host, port), recorded at the socket level."""
    seen: list[tuple[str, int]] = []
    original = httpcore.AnyIOBackend.connect_tcp

    async def recording(self: Any, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        seen.append((host, port))
        return await original(self, host, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", recording)
    return seen


Answer = Callable[[int], list[str]]  # call number (1, 2, ...) -> addresses


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, Answer]:
    """Fake names: `dns["x.example"] = lambda n: ["127.0.0.1"]` answers the n-th lookup."""
    names: dict[str, Answer] = {}
    calls: dict[str, int] = {}
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in names:
            return real(host, port, *args, **kwargs)
        calls[name] = calls.get(name, 0) + 1
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, int(port or 0)))
            for addr in names[name](calls[name])
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return names


def settings(allow: list[str]) -> FetchSettings:
    return FetchSettings(
        allow_hosts=allow, connect_timeout=2, read_timeout=2, total_timeout=10, max_redirects=3
    )


async def refused(url: str, tmp_path: Path, allow: list[str] | None = None) -> JobError:
    started = time.monotonic()
    with pytest.raises(JobError) as caught:
        await fetch_media(url, tmp_path / "m", settings(allow or []), NO_MINIO)
    assert time.monotonic() - started < 1.5, "refused at once, not after a connect timeout"
    assert caught.value.error_type == "blocked_url", caught.value
    assert not caught.value.transient
    assert not (tmp_path / "m").exists()
    return caught.value


# (URL template, the reason's wording); {port} is the recording listener's port.
DIRECT = [
    ("http://127.0.0.1:{port}/a.mp3", "127.0.0.1 is a loopback address"),
    ("http://localhost:{port}/a.mp3", "is a loopback address"),
    ("http://127.1:{port}/a.mp3", "127.0.0.1 is a loopback address"),
    ("http://2130706433:{port}/a.mp3", "127.0.0.1 is a loopback address"),
    ("http://0x7f.0.0.1:{port}/a.mp3", "127.0.0.1 is a loopback address"),
    ("http://0.0.0.0:{port}/a.mp3", "0.0.0.0 is an unspecified address"),
    ("http://[::ffff:127.0.0.1]:{port}/a.mp3", "is a loopback address"),
    ("http://10.0.0.1/x", "10.0.0.1 is a private address"),
    ("http://192.168.1.1:{port}/x", "192.168.1.1 is a private address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://100.100.100.200/latest/meta-data/", "100.100.100.200 is a non-public address"),
    ("http://224.0.0.1:{port}/x", "224.0.0.1 is a multicast address"),
    ("http://[fd00::1]:{port}/x", "fd00::1 is a private address"),
    ("http://[fe80::1]:{port}/x", "fe80::1 is a link-local address"),
    ("http://[ff02::1]:{port}/x", "ff02::1 is a multicast address"),
]


@pytest.mark.parametrize(("template", "reason"), DIRECT, ids=[t for t, _ in DIRECT])
async def test_private_targets_are_refused_without_connecting(
    template: str,
    reason: str,
    listener: Listener,
    connects: list[tuple[str, int]],
    tmp_path: Path,
) -> None:
    err = await refused(template.format(port=listener.port), tmp_path)
    assert reason in (err.detail or "") and "STT_FETCH_ALLOW_HOSTS" in str(err)
    # The client is told it was refused, not what the host resolved to (issue 12, item 6).
    assert str(err).endswith(f": {NOT_PUBLIC} (not on STT_FETCH_ALLOW_HOSTS)")
    assert connects == [] and listener.accepted == []


async def test_ipv6_loopback_is_refused(
    listener6: Listener, connects: list[tuple[str, int]], tmp_path: Path
) -> None:
    err = await refused(f"http://[::1]:{listener6.port}/a.mp3", tmp_path)
    assert "::1 is a loopback address" in (err.detail or "")
    assert connects == [] and listener6.accepted == []


async def test_a_name_resolving_to_loopback_is_refused(
    dns: dict[str, Answer], listener: Listener, connects: list[tuple[str, int]], tmp_path: Path
) -> None:
    dns["rebind.example"] = lambda n: ["127.0.0.1"]
    err = await refused(f"http://rebind.example:{listener.port}/a.mp3", tmp_path)
    assert "127.0.0.1 is a loopback address" in (err.detail or "")
    assert "127.0.0.1" not in str(err)  # the name the client gave, never what it resolved to
    assert connects == [] and listener.accepted == []


async def test_a_name_with_one_private_address_among_public_ones_is_refused(
    dns: dict[str, Answer], listener: Listener, connects: list[tuple[str, int]], tmp_path: Path
) -> None:
    dns["mixed.example"] = lambda n: ["93.184.216.34", "127.0.0.1"]
    await refused(f"http://mixed.example:{listener.port}/a.mp3", tmp_path)
    assert connects == [] and listener.accepted == []


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/secret",
        "http://rebind.example:{port}/secret",
        "http://[::ffff:7f00:1]:{port}/secret",
        "http://169.254.169.254/latest/meta-data/iam/",
    ],
)
async def test_a_public_url_redirecting_to_a_private_address_is_refused(
    target: str,
    dns: dict[str, Answer],
    media: Media,
    listener: Listener,
    connects: list[tuple[str, int]],
    tmp_path: Path,
) -> None:
    # `public.example` stands for a public host: allowed by name, served by `media`.
    dns["public.example"] = lambda n: ["127.0.0.1"]
    dns["rebind.example"] = lambda n: ["127.0.0.1"]
    media.location = target.format(port=listener.port)
    url = f"http://public.example:{media.port}/go"
    err = await refused(url, tmp_path, allow=["public.example"])
    assert "Refused to fetch" in str(err)
    assert media.hits == 1
    assert connects == [("127.0.0.1", media.port)]  # the public host only
    assert listener.accepted == []


async def test_dns_rebinding_cannot_swap_the_checked_address(
    dns: dict[str, Answer], media: Media, connects: list[tuple[str, int]], tmp_path: Path
) -> None:
    """The guard's lookup says 127.0.0.1 (allowed); every later lookup says 127.0.0.2, where an
    "internal" service listens on the same port. The download must come from the checked one."""
    try:
        internal = Listener("127.0.0.2", media.port)
    except OSError:
        pytest.skip("127.0.0.2 is not usable here")
    dns["rebind.example"] = lambda n: ["127.0.0.1"] if n == 1 else ["127.0.0.2"]
    try:
        dest = await fetch_media(
            f"http://rebind.example:{media.port}/audio",
            tmp_path / "m",
            settings(["127.0.0.1"]),
            NO_MINIO,
        )
        assert dest.read_bytes() == AUDIO
        assert media.hits == 1 and internal.accepted == []
        assert connects == [("127.0.0.1", media.port)]
    finally:
        internal.close()


async def test_minio_exception_is_its_exact_host_and_port(
    listener: Listener, connects: list[tuple[str, int]], tmp_path: Path
) -> None:
    minio = MinioSettings(endpoint="localhost:9")  # the endpoint's port, not the listener's
    with pytest.raises(JobError) as caught:
        await fetch_media(
            f"http://localhost:{listener.port}/b/k", tmp_path / "m", settings([]), minio
        )
    assert caught.value.error_type == "blocked_url"
    assert connects == [] and listener.accepted == []


@pytest.fixture
def tls_media(tmp_path: Path) -> Iterator[tuple[Media, Path]]:
    """`Media` over HTTPS with a self-signed certificate for the name `secure.example` only."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=secure.example", "-addext", "subjectAltName=DNS:secure.example",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    srv = Media()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield srv, cert
    srv.shutdown()
    srv.server_close()


async def test_pinned_https_still_verifies_the_certificate_for_the_name(
    tls_media: tuple[Media, Path],
    dns: dict[str, Answer],
    connects: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    media, cert = tls_media
    monkeypatch.setattr(
        pinned_transport, "default_tls", lambda: ssl.create_default_context(cafile=str(cert))
    )
    dns["secure.example"] = lambda n: ["127.0.0.1"]
    allow = settings(["127.0.0.1"])
    url = f"https://secure.example:{media.port}/audio"
    dest = await fetch_media(url, tmp_path / "m", allow, NO_MINIO)
    assert dest.read_bytes() == AUDIO
    assert connects == [("127.0.0.1", media.port)]  # socket to the address, TLS for the name
    # The certificate names secure.example only: the bare address fails verification.
    with pytest.raises(JobError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        await fetch_media(f"https://127.0.0.1:{media.port}/audio", tmp_path / "n", allow, NO_MINIO)
