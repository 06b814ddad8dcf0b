"""The development `.env` and the service manager's bookkeeping, without starting anything."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from stt_common.settings import ApiSettings, RedisSettings
from stt_local import LocalStackError
from stt_local.cli import main
from stt_local.config import config_from_settings
from stt_local.dotenv import DEFAULTS, ensure_env_file, keys_in
from stt_local.services import Services, TranscriberService

SECRETS = ("STT_API_KEYS", "REDIS_PASSWORD", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY")


def _values(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs if not key.startswith("#")}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No stt settings from the environment, and tmp_path as the working directory."""
    for key in [*DEFAULTS, "REDIS_DB", "STT_CACHE_DIR"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_env_file_is_created_with_random_secrets_and_mode_0600(tmp_path: Path) -> None:
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    result = ensure_env_file(first)
    ensure_env_file(second)
    assert result.created and result.added == list(DEFAULTS)
    assert result.line() is not None and "wrote" in result.line()  # type: ignore[operator]
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    a, b = _values(first), _values(second)
    assert set(a) == set(DEFAULTS)
    for key in SECRETS:
        assert len(a[key]) >= 12 and not a[key].startswith("-"), key
        assert a[key] != b[key], key  # random each time
    assert a["REDIS_HOST"] == "127.0.0.1" and a["REDIS_PORT"] == "6379"
    assert a["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9092"
    assert a["MINIO_ENDPOINT"] == "127.0.0.1:9000" and a["MINIO_BUCKET"] == "stt-media"
    assert a["STT_FETCH_ALLOW_HOSTS"] == ""


def test_env_file_is_reused_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    ensure_env_file(path)
    before = path.read_bytes()
    again = ensure_env_file(path)
    assert not again.created and again.added == [] and again.line() is None
    assert path.read_bytes() == before


def test_missing_keys_are_appended_and_existing_values_kept(clean_env: Path) -> None:
    path = clean_env / ".env"
    mine = "# mine\nexport REDIS_PASSWORD=my-own\nSTT_BEAM_SIZE=1\nMINIO_BUCKET=b"
    path.write_text(mine)  # no newline at the end
    result = ensure_env_file(path)
    assert not result.created
    assert set(result.added) == set(DEFAULTS) - {"REDIS_PASSWORD", "MINIO_BUCKET"}
    text = path.read_text()
    assert text.startswith(mine + "\n")
    assert keys_in(text) == {*DEFAULTS, "STT_BEAM_SIZE"}
    assert text.count("REDIS_PASSWORD=") == 1 and text.count("MINIO_BUCKET=") == 1
    # What the services and the launcher read from the working directory:
    redis = RedisSettings()
    assert redis.password is not None and redis.password.get_secret_value() == "my-own"
    assert len(ApiSettings().api_keys) == 1


def test_launcher_settings_come_from_the_env_file(clean_env: Path) -> None:
    ensure_env_file()
    values = _values(clean_env / ".env")
    config = config_from_settings(clean_env / "state", clean_env / "cache")
    assert config.redis_password == values["REDIS_PASSWORD"]
    assert config.s3_access_key == values["MINIO_ACCESS_KEY"]
    assert config.s3_secret_key == values["MINIO_SECRET_KEY"]
    assert (config.kafka_port, config.redis_port, config.s3_port) == (9092, 6379, 9000)


def test_services_status_on_an_empty_state_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    services = Services(tmp_path / "state", tmp_path, api_port=18000)
    statuses = services.status()
    assert [(s.name, s.running, s.pid) for s in statuses] == [
        ("api", False, None), ("projector", False, None), ("transcriber", False, None),
        ("webhooks", False, None),
    ]  # fmt: skip
    assert statuses[0].line().split() == ["api", "stopped", "http://127.0.0.1:18000"]
    assert statuses[2].line().split() == ["transcriber", "stopped", "worker"]
    services.down()  # nothing to stop: no error
    with pytest.raises(LocalStackError, match="unknown service"):
        services.status(["kafka"])
    args = ["status", "api", "transcriber", "--state-dir", str(tmp_path), "--cache-dir", "x"]
    assert main(args) == 3
    assert capsys.readouterr().out.count("stopped") == 2


def test_worker_ready_line_counts_only_in_the_current_run(tmp_path: Path) -> None:
    worker = TranscriberService(tmp_path, tmp_path)
    worker.dir.mkdir()
    old = '{"msg": "transcriber vm-1 ready"}\n=== starting again\n'
    worker.log_path.write_text(old + '{"msg": "model base loaded in 1.00s"}\n')
    worker.start_path.write_text(f"{len(old)}\n")
    assert not worker.logged_ready()
    with worker.log_path.open("a") as log:
        log.write('{"msg": "transcriber vm-2 ready", "level": "info"}\n')
    assert worker.logged_ready()
    worker.start_path.write_text("999999\n")  # log truncated since: read it all
    assert worker.logged_ready()
    worker.log_path.write_text("2024-01-01 transcriber INFO transcriber vm-3 ready\n")  # text logs
    assert worker.logged_ready()
    # The line as stt_transcriber.main writes it, with how the worker runs its jobs.
    worker.log_path.write_text('{"msg": "transcriber vm-4 ready (one job at a time)"}\n')
    assert worker.logged_ready()
