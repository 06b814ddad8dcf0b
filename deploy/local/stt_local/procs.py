"""Child processes of the local stack: spawn with a log file, check, stop, read the log's tail."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import deque
from pathlib import Path

# Popen handles of the servers this process started: kept so they are reaped (no zombies that
# would look alive to os.kill(pid, 0)) and so Python does not warn about them at exit.
_children: dict[int, subprocess.Popen[bytes]] = {}


# Command-line flags whose next argument is a secret (no server of ours is given one this way,
# but a log line must never show one if it is).
SECRET_FLAGS = frozenset({"--requirepass", "--masterauth", "--password", "--secret-key"})


def redacted(cmd: list[str]) -> list[str]:
    """`cmd` with the value after each flag in SECRET_FLAGS replaced by "***"."""
    return ["***" if i and cmd[i - 1] in SECRET_FLAGS else arg for i, arg in enumerate(cmd)]


def spawn(cmd: list[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None) -> int:
    """Start cmd detached from our session (it outlives `stt local up`), stdout+stderr to log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        shown = " ".join(redacted(cmd))
        log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {shown}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    return proc.pid


def is_alive(pid: int, marker: str | None = None) -> bool:
    """True when pid runs and (if given) its command line contains marker (guards pid reuse)."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            _children.pop(pid, None)
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process got our old pid
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no procfs: trust the signal check
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        cmdline = _cmdline(proc)
        comm = (proc / "comm").read_text()  # cmdline can be blank while a title is rewritten
    except OSError:
        return False
    return marker is None or marker in cmdline or marker in comm


def _cmdline(proc: Path, attempts: int = 20) -> str:
    """The command line; read again for a moment while it is blank, as it is just after exec
    (seen with Go binaries such as prometheus: an empty /proc/<pid>/cmdline for a few ms)."""
    for _ in range(attempts):
        raw = (proc / "cmdline").read_bytes()
        if raw:
            break
        time.sleep(0.005)
    return raw.replace(b"\0", b" ").decode(errors="replace")


def terminate(pid: int, marker: str | None = None, timeout: float = 30.0) -> None:
    """SIGTERM, wait up to timeout, then SIGKILL; returns once the process is gone."""
    if not is_alive(pid, marker):
        return
    _signal(pid, signal.SIGTERM)
    if _wait_gone(pid, marker, timeout):
        return
    _signal(pid, signal.SIGKILL)
    _wait_gone(pid, marker, 10.0)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, marker: str | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, marker):
            _children.pop(pid, None)
            return True
        time.sleep(0.1)
    return False


def tail(path: Path, lines: int = 20, start: int = 0) -> str:
    """The last lines of a log, reading from byte offset start (where this run began)."""
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            last = deque(fh, maxlen=lines)
    except OSError:
        return "(no log)"
    return b"".join(last).decode(errors="replace").rstrip() or "(log is empty)"
