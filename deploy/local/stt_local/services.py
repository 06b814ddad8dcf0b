"""The stt services of the local stack: `stt api`, `stt projector`, `stt transcriber`,
`stt webhooks`.

Each runs detached like the servers (pid file and log under `<state dir>/<name>/`), with the
directory `stt local up` ran in as its working directory, so it reads the same `.env`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stt_local import procs
from stt_local.errors import LocalStackError
from stt_local.ports import HOST, ensure_port_free
from stt_local.server import Server, ServerStatus

SERVICE_NAMES = ("api", "projector", "transcriber", "webhooks")
# Stop order: no new submits first, then let the transcriber finish its job, and the projector
# and the webhook sender last so they pass on that job's result.
STOP_ORDER = ("api", "transcriber", "webhooks", "projector")


@dataclass(frozen=True)
class ServiceStatus(ServerStatus):
    path: str = ""  # a worker's port serves /metrics

    def line(self) -> str:
        where = f"http://{HOST}:{self.port}{self.path}" if self.port else "worker"
        if not self.running:
            return f"{self.name:<11} stopped          {where}"
        health = "healthy" if self.healthy else f"unhealthy: {self.detail}"
        return f"{self.name:<11} running pid {self.pid:<7} {where}  {health}"


class Service(Server):
    """One `python -m stt_cli.main <name>` process under state_dir/<name>/."""

    start_timeout = 120.0  # imports, and the transcriber loads the model
    url_path = ""  # what its port serves, for the status line
    # SIGTERM lets the transcriber finish its job for STT_WORKER_SHUTDOWN_GRACE (30 s by default).
    stop_timeout = 40.0

    def __init__(self, state_dir: Path, workdir: Path, port: int = 0, host: str = HOST) -> None:
        super().__init__(state_dir, port, host)
        self.workdir = workdir
        self.start_path = self.dir / f"{self.name}.logstart"  # where the current run's log begins

    @property
    def ports(self) -> dict[int, str]:
        return {self.port: self.name} if self.port else {}

    @property
    def marker(self) -> str:
        return f"stt_cli.main {self.name}"

    def prepare(self) -> None:
        pass

    def command(self) -> list[str]:
        return [sys.executable, "-m", "stt_cli.main", self.name]

    def launch(self) -> int:
        """Like Server.launch, but in workdir (for `.env`) and remembering where the log starts."""
        for port, what in self.ports.items():
            ensure_port_free(port, what, self.host)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.start_path.write_text(f"{self._log_offset}\n")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env()}
        pid = procs.spawn(self.command(), self.log_path, cwd=self.workdir, env=env)
        self.pid_path.write_text(f"{pid}\n")
        return pid

    def extra_env(self) -> dict[str, str]:
        """Variables this service gets on top of ours (they win over `.env`)."""
        return {}

    def status(self, timeout: float = 3.0) -> ServiceStatus:
        s = super().status(timeout)
        return ServiceStatus(s.name, s.running, s.pid, s.port, s.healthy, s.detail, self.url_path)


class ApiService(Service):
    name = "api"

    def command(self) -> list[str]:
        return [*super().command(), "--host", self.host, "--port", str(self.port)]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def check(self, timeout: float = 3.0) -> None:
        import httpx

        response = httpx.get(f"{self.url}/health", timeout=timeout)
        if response.status_code != 200:
            raise ConnectionError(f"GET /health answered {response.status_code}")


class WorkerService(Service):
    """A worker: healthy once this run's log has its ready line. Its port, when not 0, is its
    /metrics (STT_METRICS_PORT, on the launcher's host only)."""

    ready: re.Pattern[str]
    url_path = "/metrics"

    def extra_env(self) -> dict[str, str]:
        if not self.port:
            return {}
        return {"STT_METRICS_PORT": str(self.port), "STT_METRICS_HOST": self.host}

    def check(self, timeout: float = 3.0) -> None:
        if not self.logged_ready():
            raise ConnectionError("not ready yet (no ready line in its log)")

    def logged_ready(self) -> bool:
        try:
            start = int(self.start_path.read_text().strip())
        except (OSError, ValueError):
            start = 0
        try:
            with self.log_path.open("rb") as log:
                if start > log.seek(0, 2):
                    start = 0  # the log was truncated since
                log.seek(start)
                return any(self.ready.search(_message(raw)) for raw in log)
        except OSError:
            return False


class ProjectorService(WorkerService):
    name = "projector"
    ready = re.compile(r"(^|\s)projector ready$")  # stt_projector/handler.py


class TranscriberService(WorkerService):
    name = "transcriber"
    ready = re.compile(r"(^|\s)transcriber \S+ ready( \(.*\))?$")  # stt_transcriber/main.py


class WebhooksService(WorkerService):
    name = "webhooks"
    ready = re.compile(r"(^|\s)webhooks ready$")  # stt_webhooks/main.py


def _message(raw: bytes) -> str:
    """The `msg` of a JSON log line, or the line itself (STT_LOG_FORMAT=text, tracebacks)."""
    line = raw.decode(errors="replace").strip()
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            return line
        if isinstance(entry, dict):
            return str(entry.get("msg", ""))
    return line


class Services:
    """api, projector, transcriber and webhooks together; the same up/down/status as the
    servers' Stack."""

    def __init__(
        self,
        state_dir: Path,
        workdir: Path,
        api_port: int = 8000,
        host: str = HOST,
        metrics_port: int = 0,
    ) -> None:
        """metrics_port: the projector's /metrics; the transcriber's and webhooks' follow it
        (+1, +2). 0: the workers serve no metrics."""
        state_dir, workdir = state_dir.resolve(), workdir.resolve()

        def port(offset: int) -> int:
            return metrics_port + offset if metrics_port else 0

        self.api = ApiService(state_dir, workdir, api_port, host)
        self.projector = ProjectorService(state_dir, workdir, port(0), host)
        self.transcriber = TranscriberService(state_dir, workdir, port(1), host)
        self.webhooks = WebhooksService(state_dir, workdir, port(2), host)
        self.services: dict[str, Service] = {
            "api": self.api, "projector": self.projector, "transcriber": self.transcriber,
            "webhooks": self.webhooks,
        }  # fmt: skip

    def _pick(
        self, names: Iterable[str] | None, order: Iterable[str] = SERVICE_NAMES
    ) -> list[Service]:
        order = list(order)
        chosen = order if names is None else list(names)
        unknown = [n for n in chosen if n not in self.services]
        if unknown:
            raise LocalStackError(
                f"unknown service(s) {unknown}; choose from {list(SERVICE_NAMES)}"
            )
        return [self.services[n] for n in order if n in chosen]

    @property
    def log_paths(self) -> list[Path]:
        return [s.log_path for s in self.services.values()]

    def up(self, names: Iterable[str] | None = None) -> list[ServiceStatus]:
        """Start what is not running and wait until all are ready; leave running ones alone.

        An api whose process runs but does not answer /health is restarted. If a start fails,
        the services launched by this call are stopped again before raising.
        """
        services = self._pick(names)
        launched: list[Service] = []
        try:
            for service in services:
                pid = service.pid()
                if pid is not None and service is self.api and not service.status().healthy:
                    service.stop()  # alive but not answering: hung, or from a broken start
                    pid = None
                if pid is None:
                    service.launch()
                    launched.append(service)
            for service in services:  # launched together, so they load in parallel
                service.wait_healthy()
        except BaseException:
            for service in launched:
                service.stop()
            raise
        return [s.status() for s in services]

    def down(self, names: Iterable[str] | None = None) -> None:
        for service in self._pick(names, STOP_ORDER):
            service.stop()

    def scrape_targets(self) -> dict[str, list[str]]:
        """Prometheus jobs (stt-<name>) and the `host:port` of each one's /metrics."""

        def address(service: Service) -> str:
            host = HOST if service.host in ("0.0.0.0", "") else service.host  # a wildcard bind
            return f"{host}:{service.port}"

        return {
            f"stt-{name}": [address(service)] if service.port else []
            for name, service in self.services.items()
        }

    def status(self, names: Iterable[str] | None = None) -> list[ServiceStatus]:
        return [s.status() for s in self._pick(names)]
