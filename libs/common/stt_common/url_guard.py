"""Refuses URLs that point into the service's own network (SSRF): media and webhook callbacks.

`refusal()` is pure: it judges a host name and the addresses it resolved to against the
allow list, so the rules are testable without DNS. `resolve()` does the lookup.

The check is made before every request, redirects included, and `pinned_transport` then
connects to exactly the addresses that were checked, so DNS rebinding cannot swap them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, compatible), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _V4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: str | IPAddress) -> str | None:
    """What kind of non-public address this is ("loopback", "private", ...), or None if public."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    inner = embedded_ipv4(ip)
    if inner is not None:
        return classify(inner)
    # Order matters only for the wording: the most specific kind is named.
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:  # e.g. 100.64.0.0/10 shared address space (some clouds' metadata)
        return "non-public"
    return None


def _parse_allow(allow_hosts: Iterable[str]) -> tuple[set[str], list[IPNetwork]]:
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in allow_hosts:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            names.add(_norm_host(entry))
    return names, networks


def _norm_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _allowed(ip: IPAddress, networks: list[IPNetwork]) -> bool:
    candidates = [ip]
    inner = embedded_ipv4(ip)
    if inner is not None:
        candidates.append(inner)
    return any(c.version == n.version and c in n for c in candidates for n in networks)


def refusal(host: str, addresses: Iterable[str], allow_hosts: Iterable[str]) -> str | None:
    """Why `host`, resolved to `addresses`, must not be fetched; None when it may be.

    A host is refused when ANY of its addresses is non-public (the client may connect to any),
    unless the host name, or that address (as an IP or within a CIDR), is on the allow list.
    """
    names, networks = _parse_allow(allow_hosts)
    if _norm_host(host) in names:
        return None
    resolved = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]  # drop IPv6 zone
    if not resolved:
        return f"{host} resolves to no address"
    for ip in resolved:
        kind = classify(ip)
        if kind is not None and not _allowed(ip, networks):
            article = "an" if kind[0] in "aeiou" else "a"
            return f"{ip} is {article} {kind} address"
    return None


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself); raises OSError."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM
    )
    seen: dict[str, None] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)
