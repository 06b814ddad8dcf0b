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

import pytest

from stt_local import free_ports, procs
from stt_local.ports import port_in_use
from stt_testing.infra import cache_dir

pytestmark = [pytest.mark.infra, pytest.mark.timeout(240)]

NAMES = ("kafka", "redis", "s3", "api", "projector", "transcriber", "webhooks")
SAMPLE_WORDS = {"hello", "computer", "sentence", "text", "service"}


def _ports() -> tuple[int, int, int, int]:
    """Kafka, Redis, S3 and API ports; Kafka's controller takes Kafka's port + 1."""
    while True:
        kafka, redis, s3, api = free_ports(4)
        if kafka + 1 not in (redis, s3, api) and not port_in_use(kafka + 1):
            return kafka, redis, s3, api


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
    (tmp_path / ".env").write_text(
        f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{kafka}\nREDIS_PORT={redis}\n"
        f"MINIO_ENDPOINT=127.0.0.1:{s3}\nSTT_PORT={api}\nSTT_BEAM_SIZE=1\n"
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
        assert not procs.is_alive(pid, "stt_cli.main" if name in NAMES[3:] else None), name
    for port in (kafka, redis, s3, api):
        assert not port_in_use(port)
