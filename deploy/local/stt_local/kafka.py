"""A single-node Kafka 4.x in KRaft mode (broker and controller in one JVM)."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from stt_local.errors import LocalStackError
from stt_local.ports import HOST, can_connect
from stt_local.server import Server
from stt_local.tools import ensure_jars, require_tool

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


def new_cluster_id() -> str:
    """Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding (22 chars)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids these: they read as a CLI option
            return text


class KafkaServer(Server):
    name = "kafka"
    stop_timeout = 30.0

    def __init__(
        self, state_dir: Path, cache_dir: Path, port: int, controller_port: int, host: str = HOST
    ) -> None:
        super().__init__(state_dir, port, host)
        self.controller_port = controller_port
        self.jars = cache_dir / "kafka-jars"
        self.config = self.dir / "server.properties"
        self.data = self.dir / "data"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ports(self) -> dict[int, str]:
        return {self.port: "kafka", self.controller_port: "kafka controller"}

    @property
    def marker(self) -> str:
        return str(self.config)

    def server_properties(self) -> str:
        h = self.host
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={h}:{self.controller_port}",
            f"listeners=PLAINTEXT://{h}:{self.port},CONTROLLER://{h}:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://{h}:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.data}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",  # 50 by default; one loads faster on restart
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.segment.bytes=16777216",
            "",
        ])  # fmt: skip

    def _classpath(self) -> str:
        return f"{self.jars}/*"

    def prepare(self) -> None:
        java = require_tool("java")
        ensure_jars("kafka-pom.xml", self.jars)
        self.config.write_text(self.server_properties())
        (self.dir / "log4j2.properties").write_text(LOG4J2)
        if (self.data / "meta.properties").is_file():
            return
        id_file = self.dir / "cluster-id"
        if not id_file.is_file():
            id_file.write_text(new_cluster_id() + "\n")
        cmd = [
            java, "-cp", self._classpath(), "kafka.tools.StorageTool", "format", "--standalone",
            "-t", id_file.read_text().strip(), "-c", str(self.config),
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalStackError(
                f"formatting Kafka storage in {self.data} failed:\n{result.stdout}{result.stderr}"
            )

    def command(self) -> list[str]:
        return [
            require_tool("java"), "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # C1 only: starts faster, plenty for a dev broker
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp", self._classpath(), "kafka.Kafka", str(self.config),
        ]  # fmt: skip

    def check(self, timeout: float = 3.0) -> None:
        if not can_connect(self.port, self.host, timeout):
            raise ConnectionError(f"nothing listens on {self.bootstrap}")
        run_in_thread(_describe(self.bootstrap, timeout))


async def _describe(bootstrap: str, seconds: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(seconds * 1000))
    try:
        async with asyncio.timeout(seconds * 2):
            await admin.start()
            await admin.describe_cluster()
    finally:
        await admin.close()


def run_in_thread(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion on a private loop: callers may already be inside one."""
    error: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
