"""The three local servers together: up (only what is not running), down, status, restart."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from stt_local.errors import LocalStackError
from stt_local.kafka import KafkaServer
from stt_local.ports import HOST
from stt_local.redis_server import RedisServer
from stt_local.s3 import S3Server
from stt_local.server import Server, ServerStatus

NAMES = ("kafka", "redis", "s3")


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path  # pid files, logs, data: e.g. .cache/local
    cache_dir: Path  # downloaded jars, shared between stacks: e.g. .cache
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    redis_port: int = 6379
    redis_password: str | None = None
    s3_port: int = 9000
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "stt-media"
    host: str = HOST


class Stack:
    def __init__(self, config: StackConfig) -> None:
        # Absolute paths: the servers run with their own directory as cwd.
        self.config = c = replace(
            config, state_dir=config.state_dir.resolve(), cache_dir=config.cache_dir.resolve()
        )
        self.kafka = KafkaServer(
            c.state_dir, c.cache_dir, c.kafka_port, c.kafka_controller_port, c.host
        )
        self.redis = RedisServer(c.state_dir, c.redis_port, c.redis_password, c.host)
        self.s3 = S3Server(
            c.state_dir,
            c.cache_dir,
            c.s3_port,
            c.s3_access_key,
            c.s3_secret_key,
            c.s3_bucket,
            c.host,
        )
        self.servers: dict[str, Server] = {"kafka": self.kafka, "redis": self.redis, "s3": self.s3}

    def _pick(self, names: Iterable[str] | None) -> list[Server]:
        chosen = list(NAMES if names is None else names)
        unknown = [n for n in chosen if n not in self.servers]
        if unknown:
            raise LocalStackError(f"unknown server(s) {unknown}; choose from {list(NAMES)}")
        return [self.servers[n] for n in chosen]

    def up(self, names: Iterable[str] | None = None) -> list[ServerStatus]:
        """Start what is not running, wait until all answer; leave running servers alone.

        If a start fails, the servers launched by this call are stopped again before raising.
        """
        servers = self._pick(names)
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        launched: list[Server] = []
        try:
            # Launch everything first, then wait: the JVMs start in parallel.
            for server in servers:
                if server.pid() is None:
                    server.launch()
                    launched.append(server)
            for server in servers:
                server.wait_healthy()
        except BaseException:
            for server in launched:
                server.stop()
            raise
        return [s.status() for s in servers]

    def down(self, names: Iterable[str] | None = None) -> None:
        for server in self._pick(names):
            server.stop()

    def status(self, names: Iterable[str] | None = None) -> list[ServerStatus]:
        return [s.status() for s in self._pick(names)]

    def start(self, name: str) -> None:
        self.up([name])

    def stop(self, name: str) -> None:
        self.down([name])

    def restart(self, name: str) -> None:
        self.down([name])
        self.up([name])
