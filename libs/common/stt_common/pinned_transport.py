"""An httpx transport that connects only to the addresses the URL guard checked (no DNS rebinding).

httpx normally resolves the host name again when it connects, so a name that answered with a
public address for the check could answer with 127.0.0.1 a moment later. Here the socket is
opened to the checked address itself; the URL keeps the name, so the Host header, TLS SNI and
certificate verification still use it. A host:port that was never checked is not connected to.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterable

import httpcore
import httpx

# (host as httpcore sees it, port) -> the checked addresses, in the order to try them.
Pins = dict[tuple[str, int], list[str]]
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_key(url: httpx.URL) -> tuple[str, int]:
    """The (host, port) under which httpcore will ask to connect for `url`."""
    port = url.port or _DEFAULT_PORTS.get(url.scheme, 80)
    return url.raw_host.decode("ascii").lower(), port


class PinnedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, pins: Pins, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.pins = pins
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = self.pins.get((host.lower(), port))
        if not addresses:
            raise httpcore.ConnectError(f"{host}:{port} was not checked; not connecting")
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # the next checked address, as a resolver-driven client would
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@functools.cache
def default_tls() -> ssl.SSLContext:
    """One verifying TLS context per process (no proxy or CA settings from the environment);
    building one takes ~20 ms, too much to repeat for every fetch or delivery."""
    return httpx.create_ssl_context(trust_env=False)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """`httpx.AsyncHTTPTransport` whose connections go through `PinnedBackend(pins)`."""

    def __init__(self, pins: Pins, ssl_context: ssl.SSLContext | None = None) -> None:
        context = ssl_context or default_tls()
        super().__init__(verify=context, trust_env=False)
        # httpx has no parameter for the network backend: replace the pool it built with one
        # configured like it (no proxy, TLS verified) plus the pinning backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=10,  # one job fetches one URL (and its redirects)
            max_keepalive_connections=5,
            network_backend=PinnedBackend(pins),
        )


def pinned_client(pins: Pins, timeout: httpx.Timeout) -> httpx.AsyncClient:
    """A client that connects only to `pins` and follows no redirect by itself (the caller
    checks each hop). trust_env=False: a proxy from the environment would make the address
    check moot."""
    return httpx.AsyncClient(
        transport=PinnedTransport(pins), timeout=timeout, follow_redirects=False, trust_env=False
    )
