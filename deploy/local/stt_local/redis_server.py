"""Redis from the distribution's redis-server, run in the foreground as our child."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from stt_local.errors import LocalStackError
from stt_local.files import write_private
from stt_local.ports import HOST
from stt_local.server import Server


def find_redis_server() -> str:
    """The redis-server binary, installing the Debian package when we are root."""
    path = shutil.which("redis-server")
    if path is not None:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", "redis-server"]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
            subprocess.run(install, env=env, capture_output=True, check=False)
        path = shutil.which("redis-server")
        if path is not None:
            return path
    raise LocalStackError("redis-server not found: install it (apt-get install redis-server)")


class RedisServer(Server):
    name = "redis"
    stop_timeout = 15.0

    def __init__(self, state_dir: Path, port: int, password: str | None, host: str = HOST) -> None:
        super().__init__(state_dir, port, host)
        self.password = password or None
        self._binary = ""

    @property
    def marker(self) -> str:
        # Not the port: redis-server rewrites its process title to "redis-server host:port".
        return "redis-server"

    @property
    def secrets_path(self) -> Path:
        """The config file with the password: mode 0600, so the password is on no command line
        (world-readable in /proc, and logged by `procs.spawn`)."""
        return self.dir / "secrets.conf"

    def prepare(self) -> None:
        self._binary = find_redis_server()
        if self.password:
            quoted = self.password.replace("\\", "\\\\").replace('"', '\\"')
            write_private(self.secrets_path, f'requirepass "{quoted}"\n')
        else:
            self.secrets_path.unlink(missing_ok=True)

    def command(self) -> list[str]:
        config = [str(self.secrets_path)] if self.password else []  # a config file comes first
        return [
            self._binary or find_redis_server(), *config,
            "--port", str(self.port), "--bind", self.host, "--dir", str(self.dir),
            "--save", "", "--daemonize", "no", "--logfile", "",
            # Jobs survive a restart (kill -9 included): every write is appended, fsynced once
            # a second. Losing the data anyway is detected and repaired (stt_common.store_epoch).
            "--appendonly", "yes", "--appendfsync", "everysec",
        ]  # fmt: skip

    def data_paths(self) -> list[Path]:
        """Where the server keeps its data (the append-only files, a snapshot if any)."""
        return [self.dir / "appendonlydir", self.dir / "dump.rdb"]

    def check(self, timeout: float = 3.0) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis(
            host=self.host, port=self.port, password=self.password,
            socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # redis-py retries auth errors with backoff by default
        )  # fmt: skip
        try:
            client.ping()
        except redis.AuthenticationError as exc:
            raise LocalStackError(
                f"redis on {self.host}:{self.port} rejected the password ({exc}): REDIS_PASSWORD "
                "does not match the running server; run `stt local down` and start again"
            ) from None
        except redis.ResponseError as exc:
            if "NOAUTH" in str(exc) or "AUTH" in str(exc):
                raise LocalStackError(
                    f"redis on {self.host}:{self.port} wants a password: set REDIS_PASSWORD"
                ) from None
            raise
        finally:
            client.close()
