"""`stt local up` for real (what `make up` runs), in a temp directory on free ports.

up (servers, services, smoke check) -> up again (nothing restarted) -> SIGKILL the transcriber,
up (only it comes back) -> down (everything stopped). Jars and the model come from the shared
cache (STT_CACHE_DIR), so nothing is downloaded again.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from stt_local import free_ports, procs
from stt_local.ports import port_in_use
from stt_testing.infra import cache_dir

pytestmark = [pytest.mark.infra, pytest.mark.timeout(240)]

NAMES = ("kafka", "redis", "s3", "api", "projector", "transcriber", "webhooks", "prometheus")
SERVICES = ("api", "projector", "transcriber", "webhooks")
SAMPLE_WORDS = {"hello", "computer", "sentence", "text", "service"}


def _ports() -> tuple[int, int, int, int]:
    """Kafka, Redis, S3 and API ports; Kafka's controller takes Kafka's port + 1."""
    while True:
        kafka, redis, s3, api = free_ports(4)
        if kafka + 1 not in (redis, s3, api) and not port_in_use(kafka + 1):
            return kafka, redis, s3, api


def _observability_ports(taken: tuple[int, ...]) -> tuple[int, int]:
    """Prometheus's port and the workers' first metrics port (three in a row are used)."""
    while True:
        prometheus, metrics = free_ports(2)
        run = (metrics, metrics + 1, metrics + 2)
        if not set(run) & {*taken, prometheus, taken[0] + 1} and not any(map(port_in_use, run)):
            return prometheus, metrics


def _query(prometheus: int, promql: str) -> list[dict]:
    response = httpx.get(
        f"http://127.0.0.1:{prometheus}/api/v1/query", params={"query": promql}, timeout=5
    )
    response.raise_for_status()
    result: list[dict] = response.json()["data"]["result"]
    return result


def _wait_for_series(prometheus: int, promql: str, timeout: float = 45) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := _query(prometheus, promql):
            return result
        time.sleep(1)
    raise AssertionError(f"Prometheus has no {promql} after {timeout} s")


def _env() -> dict[str, str]:
    prefixes = ("STT_", "KAFKA_", "REDIS_", "MINIO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update({"STT_CACHE_DIR": str(cache_dir()), "PYTHONUNBUFFERED": "1"})
    return env


class Launcher:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.state = workdir / "state"

    def run(self, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "stt_cli.main", "local", *args, "--state-dir", str(self.state)]
        return subprocess.run(
            cmd, cwd=self.workdir, env=_env(), capture_output=True, text=True, timeout=timeout
        )

    def up(self) -> str:
        result = self.run("up")
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        return result.stdout

    def pids(self) -> dict[str, int]:
        return {n: int((self.state / n / f"{n}.pid").read_text()) for n in NAMES}


def _transcription(out: str) -> set[str]:
    match = re.search(r'^  "(.+)"$', out, re.MULTILINE)
    assert match, out
    return set(re.findall(r"[a-z]+", match.group(1).lower()))


def test_up_again_restart_a_crashed_service_and_down(tmp_path: Path) -> None:
    kafka, redis, s3, api = _ports()
    prometheus, metrics = _observability_ports((kafka, redis, s3, api))
    (tmp_path / ".env").write_text(
        f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{kafka}\nREDIS_PORT={redis}\n"
        f"MINIO_ENDPOINT=127.0.0.1:{s3}\nSTT_PORT={api}\nSTT_BEAM_SIZE=1\n"
        f"STT_LOCAL_PROMETHEUS_PORT={prometheus}\nSTT_LOCAL_METRICS_PORT={metrics}\n"
    )
    launcher = Launcher(tmp_path)
    try:
        started = time.monotonic()
        out = launcher.up()
        first = time.monotonic() - started
        assert SAMPLE_WORDS <= _transcription(out), out
        assert f"http://127.0.0.1:{api}/api/v1/transcribe" in out
        env_text = (tmp_path / ".env").read_text()
        key = re.search(r"^STT_API_KEYS=(.+)$", env_text, re.MULTILINE)
        assert key and f"X-API-Key: {key.group(1)}" in out  # the curl lines carry the real key
        # Prometheus's URL next to the API's, every stt process scraped and up.
        url = f"http://127.0.0.1:{prometheus}"
        assert re.search(rf"^prometheus +running pid \d+ +{url} ", out, re.MULTILINE), out
        assert "scrape targets up: 4/4" in out, out
        up = {r["metric"]["job"]: r["value"][1] for r in _query(prometheus, 'up{job=~"stt-.*"}')}
        assert up == {f"stt-{name}": "1" for name in SERVICES}, up
        # The projector's broker-side lag export reaches it (the smoke job's groups included).
        members = _wait_for_series(prometheus, 'stt_kafka_group_members{role="transcriber"} > 0')
        assert members[0]["metric"]["group"] == "stt-transcriber"
        rules = httpx.get(f"http://127.0.0.1:{prometheus}/api/v1/rules", timeout=5).json()
        loaded = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
        assert {"SttNoTranscriberConsuming", "SttDeadLettersArriving"} <= loaded
        pids = launcher.pids()

        again = launcher.up()
        assert SAMPLE_WORDS <= _transcription(again)
        assert launcher.pids() == pids  # nothing restarted

        os.kill(pids["transcriber"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while procs.is_alive(pids["transcriber"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        status = launcher.run("status")
        assert status.returncode == 3 and "transcriber stopped" in status.stdout, status.stdout
        third = launcher.up()
        assert SAMPLE_WORDS <= _transcription(third)
        after = launcher.pids()
        assert after["transcriber"] != pids["transcriber"]
        assert {n: p for n, p in after.items() if n != "transcriber"} == {
            n: p for n, p in pids.items() if n != "transcriber"
        }
        print(f"first up {first:.1f} s, whole flow {time.monotonic() - started:.1f} s")
    finally:
        down = launcher.run("down")
    assert down.returncode == 0, down.stderr
    status = launcher.run("status")
    assert status.returncode == 3 and status.stdout.count("stopped") == len(NAMES), status.stdout
    for name, pid in {**pids, **after}.items():
        assert not procs.is_alive(pid, "stt_cli.main" if name in SERVICES else None), name
    for port in (kafka, redis, s3, api, prometheus, metrics, metrics + 1, metrics + 2):
        assert not port_in_use(port)
