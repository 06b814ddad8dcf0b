"""The real stack for the benchmarks: Kafka, Redis and S3 from `stt_testing.infra`, the stt
services as real processes from `stt_testing.processes`, a media server, and a few process-level
measurements (CPU time, RSS) read from /proc.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stt_common.model_files import fetch_model
from stt_testing import processes
from stt_testing.infra import Infra, cache_dir, start_infra
from stt_testing.media_server import MediaServer

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
CPU_COUNT = os.cpu_count() or 1


@dataclass(frozen=True)
class ModelConfig:
    """The model settings shared by the worker and the bare faster-whisper runs."""

    path: str
    name: str = "whisper-base (offline, CTranslate2)"
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 2
    beam_size: int = 5
    vad_filter: bool = True  # the worker's default; bare faster-whisper gets vad_filter=True too
    vad_threshold: float = 0.35  # the worker's default (STT_VAD_THRESHOLD)
    vad_pad_ms: int = 3000  # the worker's default (STT_VAD_PAD_MS)
    vad_pad_before_ms: int = 400  # the worker's default (STT_VAD_PAD_BEFORE_MS)
    condition_on_previous_text: bool = False  # the worker's default

    def env(self) -> dict[str, str]:
        return {
            "STT_MODEL": self.path,
            "STT_DEVICE": self.device,
            "STT_COMPUTE_TYPE": self.compute_type,
            "STT_CPU_THREADS": str(self.cpu_threads),
            "STT_BEAM_SIZE": str(self.beam_size),
            "STT_VAD_FILTER": str(self.vad_filter).lower(),
            "STT_VAD_THRESHOLD": str(self.vad_threshold),
            "STT_VAD_PAD_MS": str(self.vad_pad_ms),
            "STT_VAD_PAD_BEFORE_MS": str(self.vad_pad_before_ms),
            "STT_CONDITION_ON_PREVIOUS_TEXT": str(self.condition_on_previous_text).lower(),
        }

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "device": self.device,
            "compute_type": self.compute_type,
            "cpu_threads": self.cpu_threads,
            "beam_size": self.beam_size,
            "vad_filter": self.vad_filter,
        }


@dataclass
class Bench:
    """What every scenario gets: the servers, the media server, a scratch dir, the model."""

    infra: Infra
    media: MediaServer
    media_dir: Path
    workdir: Path
    cache: Path
    model: ModelConfig
    quick: bool
    services: list[processes.Service] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # per-scenario flags of `python -m bench`

    def env(self, prefix: str | None = None, **extra: str) -> dict[str, str]:
        """Service settings on fresh topics (`<prefix>.jobs.*`), the model settings included."""
        prefix = prefix or "bench" + uuid.uuid4().hex[:6]
        base = {
            "KAFKA_TOPIC_PARTITIONS": "12",  # the service default; bounds the consumer group
            "STT_RATE_LIMIT_PER_MINUTE": "0",
            **self.model.env(),
        }
        return processes.service_env(self.infra.env(), prefix, **(base | extra))

    def media_url(self, path: Path) -> str:
        """The URL under which the media server serves `path` (copied or linked in once)."""
        target = self.media_dir / path.name
        if not target.exists():
            try:
                target.hardlink_to(path)
            except OSError:
                shutil.copyfile(path, target)
        return f"{self.media.url}/{path.name}"

    def api(self, env: dict[str, str], workers: int = 1, name: str = "api") -> processes.Api:
        port = processes.free_port()
        args = ["api", "--port", str(port)]
        if workers > 1:
            args += ["--workers", str(workers)]
        service = processes.Api(name, args, env, self.workdir, port=port)
        service.start()
        self.services.append(service)
        service.wait_ready()
        return service

    def worker(self, kind: str, env: dict[str, str], name: str | None = None) -> processes.Service:
        service = processes.worker(kind, env, self.workdir, name=name).start()
        self.services.append(service)
        return service

    def transcribers(self, env: dict[str, str], count: int, tag: str = "t") -> list[Any]:
        started = [self.worker("transcriber", env, name=f"{tag}-{i + 1}") for i in range(count)]
        for service in started:
            service.wait_for_log("ready", timeout=180)
        return started

    def projector(self, env: dict[str, str], name: str = "projector") -> processes.Service:
        service = self.worker("projector", env, name=name)
        service.wait_for_log("projector ready", timeout=120)
        return service

    def stop(self, *services: processes.Service) -> None:
        for service in services:
            service.stop()
            if service in self.services:
                self.services.remove(service)

    def stop_all(self) -> None:
        self.stop(*reversed(self.services))

    def server_pids(self) -> dict[str, int]:
        """The Kafka and Redis server pids, when the local launcher started them."""
        stack = self.infra.stack
        if stack is None:
            return {}
        found = {"kafka": stack.kafka.pid(), "redis": stack.redis.pid()}
        return {name: pid for name, pid in found.items() if pid is not None}


@contextlib.contextmanager
def open_bench(quick: bool, options: dict[str, Any] | None = None) -> Iterator[Bench]:
    cache = cache_dir()
    model_path = fetch_model(cache)
    with tempfile.TemporaryDirectory(prefix="stt-bench-") as tmp:
        root = Path(tmp)
        (root / "media").mkdir()
        (root / "work").mkdir()
        with (
            start_infra(root / "infra", cache) as infra,
            MediaServer(root / "media") as media,
        ):
            bench = Bench(
                infra=infra,
                media=media,
                media_dir=root / "media",
                workdir=root / "work",
                cache=cache,
                model=ModelConfig(path=str(model_path)),
                quick=quick,
                options=options or {},
            )
            try:
                yield bench
            finally:
                bench.stop_all()


# ---- /proc measurements -------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in tree(pid))


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak RSS since the process started), in KiB."""
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


def set_affinity(pids: list[int], cpus: set[int]) -> bool:
    """Pin processes (and their threads) to `cpus`; False when the machine lacks them."""
    if not cpus <= set(range(CPU_COUNT)):
        return False
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), cpus)
    return True


def cpu_ticks() -> dict[str, tuple[int, int]]:
    """Per CPU (and "steal", all CPUs): (busy ticks, all ticks) from /proc/stat."""
    out: dict[str, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu"):
            continue
        ticks = [int(v) for v in values[:8]]
        idle = ticks[3] + ticks[4]  # idle, iowait
        if name == "cpu":
            out["steal"] = (ticks[7], sum(ticks))
        else:
            out[name] = (sum(ticks) - idle, sum(ticks))
    return out


class CpuMeter:
    """CPU time used by some processes between `start()` and `stop()`, as cores busy; and how
    busy each CPU of the machine was meanwhile (`cpuN`), whoever used it."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.begin: dict[str, float] = {}
        self.t0 = 0.0
        self.ticks0: dict[str, tuple[int, int]] = {}

    def _read(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.pids.items()}

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.begin = self._read()
        self.ticks0 = cpu_ticks()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.t0
        end = self._read()
        ticks = cpu_ticks()
        out = {name: round((end[name] - self.begin[name]) / elapsed, 2) for name in end}
        for cpu, (busy, total) in ticks.items():
            busy0, total0 = self.ticks0.get(cpu, (0, 0))
            if total > total0:
                out[cpu] = round((busy - busy0) / (total - total0), 2)
        return out
