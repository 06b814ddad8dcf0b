"""The stack's ports and secrets, taken from the same settings the services read."""

from __future__ import annotations

from pathlib import Path

from stt_common.settings import KafkaSettings, MinioSettings, ModelSettings, RedisSettings, load
from stt_local.errors import LocalStackError
from stt_local.stack import StackConfig


def _port(address: str, variable: str) -> int:
    first = address.split(",")[0].strip()
    _, _, port = first.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise LocalStackError(
            f"{variable}={address!r} has no host:port to take the local port from"
        )
    return int(port)


def default_cache_dir() -> Path:
    return load(ModelSettings).cache_dir


def config_from_settings(
    state_dir: Path | None = None, cache_dir: Path | None = None
) -> StackConfig:
    """StackConfig from REDIS_*, KAFKA_*, MINIO_* (env and .env); Kafka's controller = port + 1."""
    redis, kafka, minio = load(RedisSettings), load(KafkaSettings), load(MinioSettings)
    cache = cache_dir or default_cache_dir()
    kafka_port = _port(kafka.bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
    return StackConfig(
        state_dir=state_dir or cache / "local",
        cache_dir=cache,
        kafka_port=kafka_port,
        kafka_controller_port=kafka_port + 1,
        redis_port=redis.port,
        redis_password=redis.password.get_secret_value() if redis.password else None,
        s3_port=_port(minio.endpoint, "MINIO_ENDPOINT"),
        s3_access_key=minio.access_key,
        s3_secret_key=minio.secret_key.get_secret_value(),
        s3_bucket=minio.bucket,
    )
