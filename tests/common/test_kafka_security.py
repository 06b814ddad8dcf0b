"""Kafka SASL/TLS settings reach the clients; a real SASL/PLAIN broker; Redis with a password."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka.errors import KafkaError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError

from stt_common import bus, job_store
from stt_common.settings import KafkaSettings, RedisSettings
from stt_local import free_ports
from stt_local.errors import LocalStackError
from stt_local.kafka import KafkaServer
from stt_testing.infra import cache_dir

SASL_USER, SASL_PASSWORD = "stt", "stt-" + uuid.uuid4().hex[:12]


def test_plaintext_has_no_security_options() -> None:
    options = bus.client_options(KafkaSettings(bootstrap_servers="k:9092"))
    assert options == {"bootstrap_servers": "k:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_options_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "KAFKA_BOOTSTRAP_SERVERS": "broker-1:9093,broker-2:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "stt",
        "KAFKA_SASL_PASSWORD": "s3cret",
    }.items():
        monkeypatch.setenv(name, value)
    settings = KafkaSettings()
    assert "s3cret" not in repr(settings)  # a SecretStr: never printed
    options = bus.client_options(settings)
    assert options["bootstrap_servers"] == "broker-1:9093,broker-2:9093"
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("stt", "s3cret")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_ssl_with_a_private_ca(tmp_path: Path) -> None:
    cafile = ssl.get_default_verify_paths().cafile
    if not cafile:
        pytest.skip("no system CA bundle to stand in for a private CA")
    options = bus.client_options(KafkaSettings(security_protocol="SSL", ssl_cafile=Path(cafile)))
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in options


async def test_clients_accept_the_options() -> None:
    settings = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="p",  # type: ignore[arg-type]
    )
    # aiokafka checks the combination when a client is built (e.g. SASL without a mechanism).
    bus.producer(settings)
    bus.consumer(settings, "t", group="g")
    with pytest.raises(ValueError):
        bus.producer(settings.model_copy(update={"sasl_mechanism": None}))


# ---- a real broker with a SASL/PLAIN listener ---------------------------------------------------


class SaslKafka(KafkaServer):
    """The launcher's broker plus a SASL_PLAINTEXT listener (PLAINTEXT stays, for its checks)."""

    def __init__(self, state_dir: Path, port: int, controller: int, sasl_port: int) -> None:
        super().__init__(state_dir, cache_dir(), port, controller)
        self.sasl_port = sasl_port

    @property
    def ports(self) -> dict[int, str]:
        return super().ports | {self.sasl_port: "kafka sasl"}

    def server_properties(self) -> str:
        h, sasl = self.host, f"SASL_PLAINTEXT://{self.host}:{self.sasl_port}"
        jaas = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{SASL_USER}="{SASL_PASSWORD}";'
        )
        text = super().server_properties()
        text = text.replace(f"PLAINTEXT://{h}:{self.port},", f"PLAINTEXT://{h}:{self.port},{sasl},")
        text = text.replace(
            f"advertised.listeners=PLAINTEXT://{h}:{self.port}",
            f"advertised.listeners=PLAINTEXT://{h}:{self.port},{sasl}",
        )
        text = text.replace(
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,",
        )
        return text + (
            "sasl.enabled.mechanisms=PLAIN\n"
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN\n"
            f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}\n"
        )


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (cache_dir() / "kafka-jars").is_dir():
        pytest.skip("needs the local launcher's Kafka jars (make test fetches them)")
    port, controller, sasl_port = free_ports(3)
    server = SaslKafka(tmp_path_factory.mktemp("sasl"), port, controller, sasl_port)
    try:
        server.start()
    except (LocalStackError, OSError) as exc:
        server.stop()
        pytest.skip(f"cannot start a local Kafka: {exc}")
    try:
        yield f"{server.host}:{sasl_port}"
    finally:
        server.stop()


def sasl(bootstrap: str, password: str, **extra: Any) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username=SASL_USER,
        sasl_password=password,  # type: ignore[arg-type]
        topic_partitions=1,
        retry_delays=[],
        **extra,
    )


async def test_round_trip_over_sasl_plain(sasl_broker: str) -> None:
    settings = sasl(sasl_broker, SASL_PASSWORD, topic_submit=f"sasl{uuid.uuid4().hex[:6]}.submit")
    await bus.ensure_topics(settings, attempts=3)
    producer = bus.producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic_submit, b"{}", key=b"k1")
    finally:
        await producer.stop()
    consumer = bus.consumer(settings, settings.topic_submit, group=None)
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()
    assert [r.key for records in batch.values() for r in records] == [b"k1"]


async def test_a_wrong_sasl_password_is_refused_and_logged(
    sasl_broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    producer = bus.producer(sasl(sasl_broker, "wrong", publish_timeout=3))
    with pytest.raises(KafkaError):
        await producer.start()  # "unable to bootstrap"; the reason is in aiokafka's log line
    await producer.stop()
    assert "Authentication failed: Invalid username or password" in caplog.text
    assert "wrong" not in caplog.text


# ---- Redis --------------------------------------------------------------------------------------


@pytest.mark.infra
async def test_redis_password_is_used_and_a_wrong_one_fails_clearly(infra: Any) -> None:
    if not infra.redis_password:
        pytest.skip("this session's Redis has no password")
    good = job_store.connect(
        RedisSettings(host=infra.redis_host, port=infra.redis_port, password=infra.redis_password)
    )
    wrong = job_store.connect(
        RedisSettings(host=infra.redis_host, port=infra.redis_port, password="wrong")
    )
    anonymous: aioredis.Redis = aioredis.Redis(
        host=infra.redis_host, port=infra.redis_port, retry=Retry(NoBackoff(), 0)
    )
    try:
        assert await good.ping()
        with pytest.raises(AuthenticationError, match="invalid username-password"):
            await wrong.ping()  # after the client's own retries (a few seconds)
        with pytest.raises((AuthenticationError, ResponseError), match=r"(?i)auth"):
            await anonymous.ping()
    finally:
        for client in (good, wrong, anonymous):
            await client.aclose()
