"""Loopback port checks: is a port taken, find a free one, wait until something listens."""

from __future__ import annotations

import socket

from stt_local.errors import LocalStackError

HOST = "127.0.0.1"


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something listens on host:port (or the port cannot be bound at all)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR so sockets lingering in TIME_WAIT after a stop do not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def ensure_port_free(port: int, what: str, host: str = HOST) -> None:
    if port_in_use(port, host):
        raise LocalStackError(f"port {port} on {host} is already in use ({what})")


def free_port(host: str = HOST) -> int:
    """A port the kernel considers free right now (racy by nature; fine for tests)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = HOST) -> list[int]:
    """count distinct free ports: all bound at once so the kernel cannot hand one out twice."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def can_connect(port: int, host: str = HOST, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
