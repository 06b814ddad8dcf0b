"""docker-compose.yml's `prometheus` and `grafana`: the files they mount exist, the scrape config
is valid for the real promtool and names the jobs the rules and the dashboard use, every stt
worker serves metrics on the port scraped, and Grafana is provisioned with that Prometheus and
the dashboard. (No Docker here: the containers themselves are not started.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
JOBS = {"stt-api", "stt-projector", "stt-transcriber", "stt-webhooks"}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return found


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host file, for the bind mounts of the repository's files."""
    found = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = ROOT / source
    return found


def test_prometheus_mounts_a_valid_config_that_scrapes_every_stt_service(
    services: dict[str, Any], tmp_path: Path
) -> None:
    prometheus = services["prometheus"]
    files = mounts(prometheus)
    assert all(path.is_file() for path in files.values()), files
    config = yaml.safe_load(files["/etc/prometheus/prometheus.yml"].read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == JOBS
    (rules,) = config["rule_files"]
    assert files[rules] == ROOT / "deploy" / "prometheus" / "alerts.yml"
    config["rule_files"] = [str(files[rules])]  # the host's copy of the mounted file
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install Debian's `prometheus` package (make install)"
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert prometheus["ports"] == ["127.0.0.1:9090:9090"]  # no auth: loopback only


def test_every_scraped_worker_serves_metrics_on_that_port(services: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.compose.yml").read_text())
    for job in config["scrape_configs"]:
        service = job["job_name"].removeprefix("stt-")
        if service == "api":
            assert job["static_configs"] == [{"targets": ["api:8000"]}]
            continue
        (dns,) = job["dns_sd_configs"]
        assert dns["names"] == [service]
        assert services[service]["environment"]["STT_METRICS_PORT"] == str(dns["port"])


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(
    services: dict[str, Any],
) -> None:
    grafana = services["grafana"]
    files = mounts(grafana)
    provisioning = files["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["isDefault"]
    assert source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "stt.yml").read_text())["providers"]
    dashboard = files[f"{provider['options']['path']}/stt.json"]
    assert dashboard == ROOT / "deploy" / "grafana" / "stt.json"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith(
        "${GRAFANA_ADMIN_PASSWORD:?"
    )  # no default admin/admin
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]
