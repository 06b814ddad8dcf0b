"""Prometheus for the local stack: Debian's `prometheus` binary, with our own config and data.

It never uses the system's service (`/etc/prometheus`, `/var/lib/prometheus`, port 9090, which the
Debian package may have started): the config, its copy of the alert rules and the TSDB live
under `<state dir>/prometheus/`, and it listens on its own port (STT_LOCAL_PROMETHEUS_PORT).
The scrape jobs are named like everywhere else (stt-api, stt-projector, stt-transcriber,
stt-webhooks) so the rules in deploy/prometheus/alerts.yml and the dashboard work unchanged.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from stt_local.errors import LocalStackError
from stt_local.ports import HOST
from stt_local.server import Server

SCRAPE_INTERVAL = "5s"  # local: the dashboard moves while you watch; rules use 5m+ windows
RETENTION = "3d"
# deploy/prometheus/alerts.yml of this checkout (the package is installed editable by `make`).
ALERT_RULES = Path(__file__).resolve().parents[2] / "prometheus" / "alerts.yml"


def find_prometheus() -> str:
    path = shutil.which("prometheus")
    if path is None:
        raise LocalStackError(
            "prometheus not found: install Debian's `prometheus` package (make install does)"
        )
    return path


def scrape_config(
    targets: Mapping[str, Sequence[str]],
    rules: Sequence[Path] = (),
    interval: str = SCRAPE_INTERVAL,
) -> dict[str, object]:
    """prometheus.yml as a dict: one static job per name, `host:port` targets at /metrics."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(r) for r in rules],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(addresses)}]}
            for job, addresses in targets.items()
            if addresses
        ],
    }


class PrometheusServer(Server):
    name = "prometheus"
    start_timeout = 60.0

    def __init__(
        self,
        state_dir: Path,
        port: int,
        targets: Mapping[str, Sequence[str]],
        host: str = HOST,
        rules: Path | None = ALERT_RULES,
        interval: str = SCRAPE_INTERVAL,
    ) -> None:
        super().__init__(state_dir, port, host)
        self.targets = {job: list(addresses) for job, addresses in targets.items()}
        self.rules = rules
        self.interval = interval
        self.config_path = self.dir / "prometheus.yml"
        self.data_dir = self.dir / "data"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def marker(self) -> str:
        return str(self.config_path)  # not just "prometheus": never the system's server

    def prepare(self) -> None:
        find_prometheus()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        rules: list[Path] = []
        if self.rules is not None and self.rules.is_file():
            copy = self.dir / "alerts.yml"  # a copy: an edit in the checkout needs a restart
            shutil.copyfile(self.rules, copy)
            rules.append(copy)
        # JSON is YAML: no YAML writer needed.
        config = scrape_config(self.targets, rules, self.interval)
        self.config_path.write_text(json.dumps(config, indent=2))

    def command(self) -> list[str]:
        return [
            find_prometheus(),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address={self.host}:{self.port}",
        ]

    def check(self, timeout: float = 3.0) -> None:
        response = httpx.get(f"{self.url}/-/ready", timeout=timeout)
        if response.status_code != 200:
            raise ConnectionError(f"GET /-/ready answered {response.status_code}")

    def targets_health(self, timeout: float = 3.0) -> dict[str, str]:
        """{"job instance": "up" | "down" | "unknown"} of every active target."""
        response = httpx.get(f"{self.url}/api/v1/targets", timeout=timeout)
        response.raise_for_status()
        active = response.json()["data"]["activeTargets"]
        return {f"{t['labels']['job']} {t['labels']['instance']}": str(t["health"]) for t in active}
