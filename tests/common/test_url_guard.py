from __future__ import annotations

import pytest

from stt_common.url_guard import classify, refusal, resolve


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),  # is_private covers 240/4 before is_reserved
        ("100.64.0.1", "non-public"),  # shared address space (CGNAT)
        ("93.184.216.34", None),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("172.32.0.1", None),  # just outside 172.16/12
    ],
)
def test_classify(address: str, kind: str | None) -> None:
    assert classify(address) == kind


def test_public_host_is_allowed() -> None:
    assert refusal("example.com", ["93.184.216.34"], []) is None


def test_loopback_is_refused_with_reason() -> None:
    assert refusal("127.0.0.1", ["127.0.0.1"], []) == "127.0.0.1 is a loopback address"
    assert refusal("x", ["0.0.0.0"], []) == "0.0.0.0 is an unspecified address"


def test_any_private_address_refuses_the_host() -> None:
    # The client may connect to any of the addresses, so one bad one is enough.
    reason = refusal("mixed.example", ["93.184.216.34", "10.0.0.5"], [])
    assert reason == "10.0.0.5 is a private address"


def test_no_address_is_refused() -> None:
    assert refusal("nothing.example", [], []) is not None


@pytest.mark.parametrize(
    "allow",
    [
        ["minio.internal"],
        ["MINIO.internal."],  # case and a trailing dot do not matter
        ["10.0.0.5"],
        ["10.0.0.0/8"],
        ["192.168.0.0/16", "10.0.0.0/24"],
    ],
)
def test_allow_list_by_name_ip_or_cidr(allow: list[str]) -> None:
    assert refusal("minio.internal", ["10.0.0.5"], allow) is None


@pytest.mark.parametrize("allow", [["other.internal"], ["10.0.0.6"], ["10.1.0.0/16"], []])
def test_allow_list_does_not_over_match(allow: list[str]) -> None:
    assert refusal("minio.internal", ["10.0.0.5"], allow) == "10.0.0.5 is a private address"


def test_allow_list_covers_mapped_forms_and_ipv6_networks() -> None:
    assert refusal("h", ["::ffff:10.0.0.5"], ["10.0.0.0/8"]) is None
    assert refusal("h", ["fd00::5"], ["fd00::/8"]) is None
    assert refusal("h", ["fd00::5"], ["10.0.0.0/8"]) == "fd00::5 is a private address"


def test_ipv6_zone_is_ignored() -> None:
    assert refusal("h", ["fe80::1%eth0"], []) == "fe80::1 is a link-local address"


async def test_resolve_ip_literals() -> None:
    assert await resolve("127.0.0.1", 80) == ["127.0.0.1"]
    assert await resolve("[::1]", 80) == ["::1"]
