import pytest

from stt_common import bus
from stt_common.settings import (
    ApiSettings,
    KafkaSettings,
    RedisSettings,
    SettingsError,
    load,
    parse_duration,
)


def test_seed_redis_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "redis.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    monkeypatch.setenv("REDIS_DB", "2")
    monkeypatch.setenv("REDIS_JOB_TTL", "7200")
    redis = load(RedisSettings)
    assert (redis.host, redis.port, redis.db, redis.job_ttl) == ("redis.internal", 6380, 2, 7200)
    assert redis.password is not None and redis.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(redis)


def test_job_ttl_defaults_to_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_JOB_TTL", raising=False)
    assert RedisSettings(_env_file=None).job_ttl == 3600  # type: ignore[call-arg]


def test_malformed_setting_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PORT", "not-a-port")
    with pytest.raises(SettingsError) as caught:
        load(RedisSettings)
    message = str(caught.value)
    assert "REDIS_PORT" in message and "\n" not in message


def test_api_keys_are_comma_separated_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STT_API_KEYS", "alpha, beta,,")
    keys = load(ApiSettings).api_keys
    assert [k.get_secret_value() for k in keys] == ["alpha", "beta"]


def test_retry_topics_follow_the_submit_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TOPIC_SUBMIT", "t1.jobs.submit")
    monkeypatch.setenv("KAFKA_RETRY_DELAYS", "2s,1m")
    steps = load(KafkaSettings).retry_topics()
    assert steps == [("t1.jobs.retry.2s", 2.0), ("t1.jobs.retry.1m", 60.0)]


def test_bad_retry_delay_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_RETRY_DELAYS", "soon")
    with pytest.raises(SettingsError, match="KAFKA_RETRY_DELAYS"):
        load(KafkaSettings)


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h", 3600)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_status_topic_is_compacted_and_bounded_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_STATUS_RETENTION_MS", str(2 * 24 * 3600 * 1000))
    settings = load(KafkaSettings)
    (status,) = [t for t in bus.topic_specs(settings) if t.name == settings.topic_status]
    assert status.topic_configs["cleanup.policy"] == "compact,delete"
    assert status.topic_configs["retention.ms"] == str(2 * 24 * 3600 * 1000)


def test_status_retention_under_an_hour_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_STATUS_RETENTION_MS", "60000")
    with pytest.raises(SettingsError, match="KAFKA_STATUS_RETENTION_MS"):
        load(KafkaSettings)
