"""The launcher's errors and bookkeeping, without starting Kafka or S3."""

from __future__ import annotations

import dataclasses
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stt_local import LocalStackError, Server, Stack, StackConfig, free_ports
from stt_local.cli import main
from stt_local.config import config_from_settings
from stt_local.redis_server import RedisServer
from stt_local.tools import MARKER, ensure_jars


def _stack(tmp_path: Path, **ports: Any) -> Stack:
    kafka, controller, redis_port, s3 = free_ports(4)
    config = StackConfig(
        state_dir=tmp_path / "state",
        cache_dir=tmp_path / "cache",
        kafka_port=kafka,
        kafka_controller_port=controller,
        redis_port=redis_port,
        s3_port=s3,
        s3_access_key="ak",
        s3_secret_key="sk",
    )
    return Stack(dataclasses.replace(config, **ports))


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(("server", "field"), [("kafka", "kafka_port"), ("redis", "redis_port")])
def test_port_in_use(tmp_path: Path, listener: int, server: str, field: str) -> None:
    stack = _stack(tmp_path, **{field: listener})
    with pytest.raises(LocalStackError) as caught:
        stack.up([server])
    assert str(caught.value) == f"port {listener} on 127.0.0.1 is already in use ({server})"


def test_missing_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "java" else real_which(name))
    with pytest.raises(LocalStackError, match=r"java not found: install OpenJDK 17 \(apt-get"):
        _stack(tmp_path).up(["kafka"])
    assert not (tmp_path / "state" / "kafka" / "kafka.pid").exists()


def test_status_of_empty_state_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    statuses = _stack(tmp_path).status()
    assert [(s.name, s.running, s.pid) for s in statuses] == [
        ("kafka", False, None), ("redis", False, None), ("s3", False, None),
    ]  # fmt: skip
    assert main(["status", "--state-dir", str(tmp_path), "--cache-dir", str(tmp_path)]) == 3
    out = capsys.readouterr().out
    assert out.count("stopped") == 8  # three servers, four services and prometheus


class _Crasher(Server):
    name = "crasher"
    marker = "crasher-marker"

    def prepare(self) -> None:
        pass

    def command(self) -> list[str]:
        return ["sh", "-c", "echo crasher-marker; echo boom: bad config >&2; exit 3"]

    def check(self, timeout: float = 3.0) -> None:
        raise ConnectionError("never answers")


def test_server_dying_during_start_shows_log(tmp_path: Path) -> None:
    server = _Crasher(tmp_path, free_ports(1)[0])
    with pytest.raises(LocalStackError) as caught:
        server.start()
    assert "crasher exited during start" in str(caught.value)
    assert "boom: bad config" in str(caught.value)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_wrong_redis_password_is_named(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    running = RedisServer(tmp_path, port, "right")
    running.start()
    try:
        with pytest.raises(LocalStackError, match="REDIS_PASSWORD"):
            RedisServer(tmp_path, port, "wrong").check()
        assert running.status().healthy
    finally:
        running.stop()
    assert running.pid() is None


def test_jars_are_fetched_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jars = tmp_path / "kafka-jars"
    jars.mkdir()
    (jars / MARKER).write_text("ok\n")
    monkeypatch.setattr(shutil, "which", lambda name: None)  # mvn would be needed to refetch
    assert ensure_jars("kafka-pom.xml", jars) == jars


def test_config_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost:19092,other:1")
    monkeypatch.setenv("MINIO_ENDPOINT", "localhost:19000")
    monkeypatch.setenv("REDIS_PORT", "16379")
    monkeypatch.setenv("REDIS_PASSWORD", "pw")
    config = config_from_settings(cache_dir=tmp_path)
    assert (config.kafka_port, config.kafka_controller_port) == (19092, 19093)
    assert (config.s3_port, config.redis_port, config.redis_password) == (19000, 16379, "pw")
    assert config.state_dir == tmp_path / "local"
