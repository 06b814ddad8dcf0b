"""The development `.env`: written once with random secrets, then only ever added to.

Every service reads `.env` from its working directory (pydantic-settings), and so does the
launcher, so the servers it starts and the services that use them agree on ports and passwords.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ENV_FILE = ".env"

HEADER = """\
# Written by `stt local up` (`make up`) for the local development stack; git-ignored.
# Edit freely: later runs keep every value here and only append keys that are missing.
# Variables set in the environment win over this file.
"""


def _token(nbytes: int) -> str:
    """A URL-safe random token that does not start with '-' (it would read as a CLI option)."""
    while True:
        token = secrets.token_urlsafe(nbytes)
        if not token.startswith("-"):
            return token


# Key -> how to make its value; the order is the order in the file.
DEFAULTS: dict[str, Callable[[], str]] = {
    "STT_API_KEYS": lambda: "dev-" + _token(24),
    "STT_HOST": lambda: "127.0.0.1",
    "STT_PORT": lambda: "8000",
    "REDIS_HOST": lambda: "127.0.0.1",
    "REDIS_PORT": lambda: "6379",
    "REDIS_PASSWORD": lambda: _token(24),
    "KAFKA_BOOTSTRAP_SERVERS": lambda: "127.0.0.1:9092",
    "MINIO_ENDPOINT": lambda: "127.0.0.1:9000",
    "MINIO_ACCESS_KEY": lambda: "stt-" + secrets.token_hex(6),
    "MINIO_SECRET_KEY": lambda: _token(30),
    "MINIO_BUCKET": lambda: "stt-media",
    "STT_FETCH_ALLOW_HOSTS": lambda: "",  # private hosts to fetch from; MinIO's always may be
    "STT_WEBHOOK_SECRET": lambda: _token(32),  # signs webhooks (docker compose's `webhooks`)
    "GRAFANA_ADMIN_PASSWORD": lambda: _token(18),  # docker compose's `grafana` (user admin)
}

_KEY = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def keys_in(text: str) -> set[str]:
    """The keys a dotenv text assigns (comments and blank lines ignored)."""
    return {m.group(1) for line in text.splitlines() if (m := _KEY.match(line))}


@dataclass(frozen=True)
class EnvFile:
    path: Path
    created: bool  # True: the file is new
    added: list[str]  # the keys written by this call (all of them when created)

    def line(self) -> str | None:
        """One line for the user about what happened, or None when nothing did."""
        if self.created:
            return f"wrote {self.path} with a random API key and passwords (kept for later runs)"
        if self.added:
            return f"added {', '.join(self.added)} to {self.path}"
        return None


def ensure_env_file(path: Path | None = None) -> EnvFile:
    """Create `path` (default `./.env`, mode 0600) with fresh values, or append the keys it lacks.

    Values already in the file are never changed.
    """
    path = path or Path(ENV_FILE)
    if not path.exists():
        lines = [f"{key}={make()}" for key, make in DEFAULTS.items()]
        # O_EXCL: never clobber a file that appeared meanwhile; 0600 from the first byte.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(HEADER + "\n".join(lines) + "\n")
        return EnvFile(path, True, list(DEFAULTS))
    text = path.read_text(encoding="utf-8")
    missing = [key for key in DEFAULTS if key not in keys_in(text)]
    if missing:
        added = "".join(f"{key}={DEFAULTS[key]()}\n" for key in missing)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(("" if text.endswith("\n") or not text else "\n") + added)
        path.chmod(0o600)  # it holds fresh secrets now, whatever its mode was
    return EnvFile(path, False, missing)
