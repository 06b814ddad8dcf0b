"""What the three local servers share: pid file, log file, start with a health wait, stop."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from stt_local import procs
from stt_local.errors import LocalStackError
from stt_local.ports import HOST, ensure_port_free


@dataclass(frozen=True)
class ServerStatus:
    name: str
    running: bool
    pid: int | None
    port: int
    healthy: bool | None = None  # None: not checked (the server is stopped)
    detail: str = ""

    def line(self) -> str:
        if not self.running:
            return f"{self.name:<6} stopped          port {self.port}"
        health = "healthy" if self.healthy else f"unhealthy: {self.detail}"
        return f"{self.name:<6} running pid {self.pid:<7} port {self.port}  {health}"


class Server(ABC):
    """One server process under state_dir/<name>/."""

    name: str
    start_timeout = 60.0
    stop_timeout = 30.0

    def __init__(self, state_dir: Path, port: int, host: str = HOST) -> None:
        self.dir = state_dir / self.name
        self.port = port
        self.host = host
        self.log_path = self.dir / f"{self.name}.log"
        self.pid_path = self.dir / f"{self.name}.pid"
        self._log_offset = 0

    @property
    def ports(self) -> dict[int, str]:
        """Every port the server binds, with what to call it in an error."""
        return {self.port: self.name}

    @property
    @abstractmethod
    def marker(self) -> str:
        """A string in the process's command line, so a reused pid is not taken for ours."""

    @abstractmethod
    def prepare(self) -> None:
        """Install what is missing and write config files; runs before the process starts."""

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def check(self, timeout: float = 3.0) -> None:
        """Raise when the server does not answer properly; LocalStackError means: do not retry."""

    def after_healthy(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """A hook for one-time setup once the server answers (e.g. creating a bucket)."""

    def pid(self) -> int | None:
        """The pid of our running server, or None."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if procs.is_alive(pid, self.marker) else None

    def status(self, timeout: float = 3.0) -> ServerStatus:
        pid = self.pid()
        if pid is None:
            return ServerStatus(self.name, False, None, self.port)
        try:
            self.check(timeout)
        except Exception as exc:
            return ServerStatus(self.name, True, pid, self.port, False, str(exc) or repr(exc))
        return ServerStatus(self.name, True, pid, self.port, True)

    def launch(self) -> int:
        """Check ports, prepare, and spawn the process; does not wait for it to answer."""
        for port, what in self.ports.items():
            ensure_port_free(port, what, self.host)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        pid = procs.spawn(self.command(), self.log_path, cwd=self.dir)
        self.pid_path.write_text(f"{pid}\n")
        return pid

    def wait_healthy(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise LocalStackError(
                    f"{self.name} exited during start; last lines of {self.log_path}:\n"
                    + procs.tail(self.log_path, 20, self._log_offset)
                )
            try:
                self.check(timeout=3.0)
            except LocalStackError:
                raise
            except Exception as exc:
                last = exc
                time.sleep(0.25)
                continue
            self.after_healthy()
            return
        raise LocalStackError(
            f"{self.name} did not become healthy on {self.host}:{self.port} "
            f"within {timeout or self.start_timeout:.0f} s ({last!r}); last lines of "
            f"{self.log_path}:\n" + procs.tail(self.log_path, 20, self._log_offset)
        )

    def start(self) -> None:
        if self.pid() is None:
            self.launch()
        self.wait_healthy()

    def stop(self) -> None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return
        procs.terminate(pid, self.marker, self.stop_timeout)
        self.pid_path.unlink(missing_ok=True)
