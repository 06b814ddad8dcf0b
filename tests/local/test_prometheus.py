"""The local Prometheus's configuration (fast; `test_make_up.py` runs it for real): every stt
process a target under the job names the rules use, the workers' metrics ports set in their
environment, our own files and port rather than the system service's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stt_local.prometheus import ALERT_RULES, PrometheusServer
from stt_local.services import Services

JOBS = ["stt-api", "stt-projector", "stt-transcriber", "stt-webhooks"]


def test_targets_follow_the_api_and_metrics_ports(tmp_path: Path) -> None:
    services = Services(tmp_path / "state", tmp_path, api_port=18000, metrics_port=19491)
    assert services.scrape_targets() == {
        "stt-api": ["127.0.0.1:18000"],
        "stt-projector": ["127.0.0.1:19491"],
        "stt-transcriber": ["127.0.0.1:19492"],
        "stt-webhooks": ["127.0.0.1:19493"],
    }
    assert services.transcriber.extra_env() == {
        "STT_METRICS_PORT": "19492",
        "STT_METRICS_HOST": "127.0.0.1",  # never on every interface
    }
    assert services.api.extra_env() == {}
    line = services.transcriber.status().line()
    assert line.split() == ["transcriber", "stopped", "http://127.0.0.1:19492/metrics"]


def test_a_wildcard_api_bind_is_scraped_on_loopback(tmp_path: Path) -> None:
    services = Services(tmp_path, tmp_path, api_port=18000, host="0.0.0.0", metrics_port=19491)
    assert services.scrape_targets()["stt-api"] == ["127.0.0.1:18000"]


def test_without_a_metrics_port_only_the_api_is_scraped(tmp_path: Path) -> None:
    services = Services(tmp_path, tmp_path, api_port=18000)
    assert {job: t for job, t in services.scrape_targets().items() if t} == {
        "stt-api": ["127.0.0.1:18000"]
    }
    assert services.projector.extra_env() == {}


def test_config_data_dir_and_port_are_its_own(tmp_path: Path) -> None:
    targets = Services(tmp_path, tmp_path, api_port=18000, metrics_port=19491).scrape_targets()
    prometheus = PrometheusServer(tmp_path / "state", 19490, targets)
    prometheus.dir.mkdir(parents=True)
    prometheus.prepare()
    config = json.loads(prometheus.config_path.read_text())  # JSON is YAML
    assert [job["job_name"] for job in config["scrape_configs"]] == JOBS
    assert config["global"]["scrape_interval"] == "5s"
    (rules,) = config["rule_files"]
    assert Path(rules).read_text() == ALERT_RULES.read_text()
    assert Path(rules).parent == prometheus.dir
    command = prometheus.command()
    assert f"--config.file={prometheus.config_path}" in command
    assert f"--storage.tsdb.path={tmp_path / 'state' / 'prometheus' / 'data'}" in command
    assert "--web.listen-address=127.0.0.1:19490" in command
    assert prometheus.marker == str(prometheus.config_path)  # not any `prometheus` process


def test_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stt_local.errors import LocalStackError

    monkeypatch.setenv("PATH", str(tmp_path))
    prometheus = PrometheusServer(tmp_path, 19490, {})
    with pytest.raises(LocalStackError, match=r"prometheus not found.*make install"):
        prometheus.prepare()


def test_a_prometheus_just_started_is_seen_alive(tmp_path: Path) -> None:
    """Right after exec its /proc cmdline is briefly empty; before procs read it again, about one
    start in four looked like "exited during start" to `stt local up`."""
    from stt_local import free_port, procs

    config = tmp_path / "prometheus.yml"
    config.write_text("{}")
    port = free_port()
    for _ in range(20):
        pid = procs.spawn(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            tmp_path / "prometheus.log",
            tmp_path,
        )
        try:
            assert procs.is_alive(pid, str(config))
        finally:
            procs.terminate(pid, None, 10)
