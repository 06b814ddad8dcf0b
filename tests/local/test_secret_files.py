"""The local stack keeps its secrets out of logs, command lines and world-readable files (issue 12).

Real servers where it matters: a password-protected redis-server is started and its log and
/proc command line are read; the S3 server's config is written as `stt local up` writes it.
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
import redis

from stt_local import free_ports
from stt_local.dotenv import ensure_env_file
from stt_local.procs import redacted
from stt_local.redis_server import RedisServer
from stt_local.s3 import S3Server
from stt_testing.infra import cache_dir

PASSWORD = "redis-pw-0123456789abcdef"
SECRET = "s3-secret-0123456789abcdef"


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_the_redis_password_is_neither_logged_nor_on_the_command_line(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    server = RedisServer(tmp_path, port, PASSWORD)
    server.start()
    try:
        pid = server.pid()
        assert pid is not None
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert PASSWORD not in cmdline  # /proc/<pid>/cmdline is readable by every user
        assert PASSWORD not in server.log_path.read_text()
        assert private(server.secrets_path)
        client = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD)
        assert client.ping()  # the password from the file is the one enforced
        client.close()
    finally:
        server.stop()


def test_the_s3_config_with_the_secret_is_owner_only(tmp_path: Path) -> None:
    if shutil.which("java") is None:
        pytest.skip("needs java")
    server = S3Server(tmp_path, cache_dir(), free_ports(1)[0], "key", SECRET, "bucket")
    server.config.parent.mkdir(parents=True)
    server.config.write_text("old, world-readable\n")
    server.config.chmod(0o644)
    server.prepare()
    assert SECRET in server.config.read_text()
    assert private(server.config)


def test_secrets_added_to_an_env_file_make_it_owner_only(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("STT_LOG_LEVEL=info\n")
    path.chmod(0o644)
    assert ensure_env_file(path).added  # it lacked every secret
    assert private(path)


def test_logged_command_lines_hide_secret_flags() -> None:
    shown = redacted(["redis-server", "--port", "1", "--requirepass", PASSWORD])
    assert shown == ["redis-server", "--port", "1", "--requirepass", "***"]
