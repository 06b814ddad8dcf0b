"""Kafka, Redis and S3 for a test session, from the first source that is available:

1. servers named by the environment (all three needed): ``STT_TEST_KAFKA_BOOTSTRAP``
   (host:port), ``STT_TEST_REDIS_URL`` (redis://:password@host:port/0),
   ``STT_TEST_MINIO_ENDPOINT`` (host:port) with ``STT_TEST_MINIO_ACCESS_KEY`` /
   ``STT_TEST_MINIO_SECRET_KEY`` and optionally ``STT_TEST_MINIO_BUCKET``;
2. testcontainers, when a Docker engine answers;
3. the local launcher (stt_local), on free loopback ports in a session tmp dir, with the jars
   cached in ``STT_CACHE_DIR`` (default ``<repo>/.cache``).

``STT_TEST_INFRA=env|docker|local`` forces one of them.
"""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stt_local import Stack, StackConfig, free_ports

REPO = Path(__file__).resolve().parents[3]  # libs/testing/stt_testing/ -> the checkout
TEST_BUCKET = "stt-test"


def cache_dir() -> Path:
    return Path(os.environ.get("STT_CACHE_DIR") or REPO / ".cache").resolve()


@dataclass
class Infra:
    kafka_bootstrap: str
    redis_host: str
    redis_port: int
    redis_password: str  # "" when the server has none
    minio_endpoint: str  # "host:port"
    minio_access_key: str
    minio_secret_key: str
    minio_bucket: str
    source: str  # "env", "docker" or "local"
    stack: Stack | None = field(default=None, repr=False)  # only for the local launcher

    @property
    def redis_url(self) -> str:
        return f"redis://:{self.redis_password}@{self.redis_host}:{self.redis_port}/0"

    def env(self) -> dict[str, str]:
        """The settings a service subprocess needs to reach these servers."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "REDIS_HOST": self.redis_host,
            "REDIS_PORT": str(self.redis_port),
            "REDIS_PASSWORD": self.redis_password,
            "MINIO_ENDPOINT": self.minio_endpoint,
            "MINIO_ACCESS_KEY": self.minio_access_key,
            "MINIO_SECRET_KEY": self.minio_secret_key,
            "MINIO_BUCKET": self.minio_bucket,
            "MINIO_SECURE": "false",
        }

    def require_stack(self) -> Stack:
        """The local Stack (to stop/start servers in fault tests); skips the test otherwise."""
        if self.stack is None:
            pytest.skip(f"needs the local launcher to stop servers (infra from {self.source})")
        return self.stack

    def stop(self, server: str) -> None:
        """Stop "kafka", "redis" or "s3" (SIGTERM, then SIGKILL); same ports when started again."""
        self.require_stack().stop(server)

    def start(self, server: str) -> None:
        """Start it again and wait until it answers (Kafka keeps its data; Redis too, from its
        append-only file, unless a test wiped it)."""
        self.require_stack().start(server)

    def restart(self, server: str) -> None:
        self.require_stack().restart(server)


def _from_env() -> Infra | None:
    kafka = os.environ.get("STT_TEST_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("STT_TEST_REDIS_URL")
    minio = os.environ.get("STT_TEST_MINIO_ENDPOINT")
    if not (kafka and redis_url and minio):
        return None
    url = urlsplit(redis_url)
    return Infra(
        kafka_bootstrap=kafka,
        redis_host=url.hostname or "127.0.0.1",
        redis_port=url.port or 6379,
        redis_password=url.password or "",
        minio_endpoint=minio,
        minio_access_key=os.environ.get("STT_TEST_MINIO_ACCESS_KEY", ""),
        minio_secret_key=os.environ.get("STT_TEST_MINIO_SECRET_KEY", ""),
        minio_bucket=os.environ.get("STT_TEST_MINIO_BUCKET", TEST_BUCKET),
        source="env",
    )


def docker_available() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextmanager
def _from_docker(password: str, secret: str) -> Iterator[Infra]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from testcontainers.kafka import KafkaContainer
        from testcontainers.minio import MinioContainer
        from testcontainers.redis import RedisContainer

    kafka = (
        KafkaContainer()
        .with_kraft()
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
    )
    with ExitStack() as stack:
        stack.enter_context(kafka)
        redis = stack.enter_context(RedisContainer("redis:7-alpine", password=password))
        minio = stack.enter_context(MinioContainer(access_key="stt-test", secret_key=secret))
        config = minio.get_config()
        yield Infra(
            kafka_bootstrap=kafka.get_bootstrap_server(),
            redis_host=redis.get_container_host_ip(),
            redis_port=int(redis.get_exposed_port(6379)),
            redis_password=password,
            minio_endpoint=config["endpoint"],
            minio_access_key=config["access_key"],
            minio_secret_key=config["secret_key"],
            minio_bucket=TEST_BUCKET,
            source="docker",
        )


@contextmanager
def _from_launcher(state_dir: Path, cache: Path, password: str, secret: str) -> Iterator[Infra]:
    kafka_port, controller_port, redis_port, s3_port = free_ports(4)
    config = StackConfig(
        state_dir=state_dir,
        cache_dir=cache,
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        redis_port=redis_port,
        redis_password=password,
        s3_port=s3_port,
        s3_access_key="stt-test",
        s3_secret_key=secret,
        s3_bucket=TEST_BUCKET,
    )
    stack = Stack(config)
    try:
        stack.up()
        yield Infra(
            kafka_bootstrap=stack.kafka.bootstrap,
            redis_host=config.host,
            redis_port=redis_port,
            redis_password=password,
            minio_endpoint=stack.s3.endpoint,
            minio_access_key=config.s3_access_key,
            minio_secret_key=secret,
            minio_bucket=TEST_BUCKET,
            source="local",
            stack=stack,
        )
    finally:
        stack.down()


def ensure_bucket(infra: Infra) -> None:
    from minio import Minio

    client = Minio(
        infra.minio_endpoint,
        access_key=infra.minio_access_key,
        secret_key=infra.minio_secret_key,
        secure=False,
        region="us-east-1",
    )
    if not client.bucket_exists(infra.minio_bucket):
        client.make_bucket(infra.minio_bucket)


@contextmanager
def start_infra(state_dir: Path, cache: Path | None = None) -> Iterator[Infra]:
    """The session's servers; stops whatever it started on exit."""
    forced = os.environ.get("STT_TEST_INFRA", "")
    password, secret = secrets.token_hex(8), secrets.token_hex(16)
    if forced in ("", "env"):
        found = _from_env()
        if found is not None:
            ensure_bucket(found)
            yield found
            return
        if forced == "env":
            raise RuntimeError("STT_TEST_INFRA=env needs STT_TEST_KAFKA_BOOTSTRAP, "
                               "STT_TEST_REDIS_URL and STT_TEST_MINIO_ENDPOINT")  # fmt: skip
    if forced == "docker" or (forced == "" and docker_available()):
        with _from_docker(password, secret) as infra:
            ensure_bucket(infra)
            yield infra
        return
    with _from_launcher(state_dir, cache or cache_dir(), password, secret) as infra:
        yield infra
