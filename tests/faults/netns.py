"""Test hosts made of network namespaces: a hub (Kafka, Redis) and worker hosts on one bridge.

    root ns  10.231.9.1 --veth-- 10.231.9.2  hub ns (br0 10.231.0.1)  --veth-- 10.231.0.11 host 1
                                                                       --veth-- 10.231.0.12 host 2

Every address lives in a namespace the test created (the root side of the driver link included)
and everything is removed on exit, so no traffic leaves the machine.
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, field

HUB_IP = "10.231.0.1"
ROOT_IP = "10.231.9.1"
HUB_LINK_IP = "10.231.9.2"


def ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


def available() -> str | None:
    """None when namespaces can be made here, else why not."""
    probe = f"sttprobe{uuid.uuid4().hex[:6]}"
    try:
        ip("netns", "add", probe)
        ip("netns", "del", probe)
    except (RuntimeError, FileNotFoundError) as exc:
        return str(exc)
    return None


@dataclass
class Topology:
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:5])
    hosts: list[str] = field(default_factory=list)

    @property
    def hub(self) -> str:
        return f"stt{self.tag}hub"

    def host(self, n: int) -> str:
        return f"stt{self.tag}h{n}"

    def host_ip(self, n: int) -> str:
        return f"10.231.0.{10 + n}"

    def link(self, n: int) -> str:
        return f"v{self.tag}h{n}"

    def __enter__(self) -> Topology:
        try:
            self._build()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _build(self) -> None:
        ip("netns", "add", self.hub)
        ip("link", "set", "lo", "up", netns=self.hub)
        ip("link", "add", "br0", "type", "bridge", netns=self.hub)
        ip("addr", "add", f"{HUB_IP}/24", "dev", "br0", netns=self.hub)
        ip("link", "set", "br0", "up", netns=self.hub)
        subprocess.run(
            ["ip", "netns", "exec", self.hub, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
            check=True, timeout=10,
        )  # fmt: skip
        # The driver's own link into the hub (root side named by tag, removed with the hub).
        root_end, hub_end = f"v{self.tag}r", f"v{self.tag}rp"
        ip("link", "add", root_end, "type", "veth", "peer", "name", hub_end)
        ip("link", "set", hub_end, "netns", self.hub)
        ip("addr", "add", f"{ROOT_IP}/30", "dev", root_end)
        ip("link", "set", root_end, "up")
        ip("addr", "add", f"{HUB_LINK_IP}/30", "dev", hub_end, netns=self.hub)
        ip("link", "set", hub_end, "up", netns=self.hub)
        ip("route", "add", "10.231.0.0/24", "via", HUB_LINK_IP)
        for n in (1, 2):
            self.add_host(n)

    def add_host(self, n: int) -> None:
        name, end, peer = self.host(n), self.link(n), f"{self.link(n)}p"
        ip("netns", "add", name)
        self.hosts.append(name)
        ip("link", "set", "lo", "up", netns=name)
        ip("link", "add", end, "type", "veth", "peer", "name", peer)
        ip("link", "set", end, "netns", name)
        ip("link", "set", peer, "netns", self.hub)
        ip("link", "set", peer, "master", "br0", netns=self.hub)
        ip("link", "set", peer, "up", netns=self.hub)
        ip("addr", "add", f"{self.host_ip(n)}/24", "dev", end, netns=name)
        ip("link", "set", end, "up", netns=name)
        ip("route", "add", "10.231.9.0/30", "via", HUB_IP, netns=name)

    def cut(self, n: int) -> None:
        ip("link", "set", self.link(n), "down", netns=self.host(n))

    def restore(self, n: int) -> None:
        ip("link", "set", self.link(n), "up", netns=self.host(n))
        ip("route", "replace", "10.231.9.0/30", "via", HUB_IP, netns=self.host(n))

    def exec_prefix(self, netns: str) -> list[str]:
        return ["ip", "netns", "exec", netns]

    def __exit__(self, *exc: object) -> None:
        for name in [*self.hosts, self.hub]:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", f"v{self.tag}r"], capture_output=True, timeout=20)
