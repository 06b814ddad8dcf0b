"""The stt services as real child processes, for tests that need them (and their signals)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from stt_local import free_port  # one helper for the launcher, the tests and bench

ROOT = Path(__file__).resolve().parents[3]  # libs/testing/stt_testing/ -> the checkout
STT = [sys.executable, "-m", "stt_cli.main"]
API_KEY = "test-key-" + uuid.uuid4().hex[:8]


def service_env(infra_env: dict[str, str], prefix: str, **extra: str) -> dict[str, str]:
    """Environment for a set of services sharing topics named `<prefix>.jobs.*`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STT_", "KAFKA_", "REDIS_"))}
    env.update(infra_env)
    env.update(
        {
            "KAFKA_TOPIC_SUBMIT": f"{prefix}.jobs.submit",
            "KAFKA_TOPIC_RESULTS": f"{prefix}.jobs.results",
            "KAFKA_TOPIC_STATUS": f"{prefix}.jobs.status",
            "KAFKA_TOPIC_DLQ": f"{prefix}.jobs.dlq",
            "KAFKA_TOPIC_PARTITIONS": "3",
            "KAFKA_RETRY_DELAYS": "1s,2s",
            "KAFKA_TRANSCRIBER_GROUP": f"{prefix}-transcriber",
            "KAFKA_PROJECTOR_GROUP": f"{prefix}-projector",
            "STT_API_KEYS": API_KEY,
            "STT_FETCH_ALLOW_HOSTS": "127.0.0.1",
            "STT_CACHE_DIR": os.environ.get("STT_CACHE_DIR", str(ROOT / ".cache")),
            "STT_BEAM_SIZE": "1",
            "STT_CPU_THREADS": "2",
            "STT_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class Service:
    name: str
    args: list[str]
    env: dict[str, str]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)
    wrapper: list[str] = field(default_factory=list)  # e.g. `ip netns exec NS` for test hosts

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> Service:
        self.starts += 1
        log = self.log_path.open("ab")
        # Runs outside the repo so a developer's `.env` cannot leak into the test.
        self.proc = subprocess.Popen(
            [*self.wrapper, *STT, *self.args],
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=log,
        )
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, timeout: float = 60, after: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text()[after:]:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} never logged {needle!r}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Api(Service):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> Api:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"api exited ({self.proc.returncode}):\n{self.tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"api not healthy after {timeout}s:\n{self.tail()}")


def mark_store_ready(env: dict[str, str]) -> None:
    """Mark the Redis of `env` as complete for its status topic, as a projector does once it has
    checked it (stt_common.store_epoch): an API tested without a projector answers 404, not 503,
    for unknown jobs."""
    import redis

    from stt_common.store_epoch import epoch_key

    client = redis.Redis(
        host=env.get("REDIS_HOST", "localhost"),
        port=int(env.get("REDIS_PORT", "6379")),
        password=env.get("REDIS_PASSWORD") or None,
        socket_connect_timeout=3,
    )
    try:
        topic = env.get("KAFKA_TOPIC_STATUS", "stt.jobs.status")
        client.hset(epoch_key(topic), mapping={"state": "ready", "epoch": "test"})
    except redis.ConnectionError:
        pass  # a test of an API whose Redis is not there
    finally:
        client.close()


def api(env: dict[str, str], workdir: Path) -> Api:
    """The API process; the store is marked complete first (see mark_store_ready)."""
    mark_store_ready(env)
    port = free_port()
    return Api("api", ["api", "--port", str(port)], env, workdir, port=port)


def worker(kind: str, env: dict[str, str], workdir: Path, name: str | None = None) -> Service:
    return Service(name or kind, [kind], env, workdir)
