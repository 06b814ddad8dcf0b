"""`stt local up|down|status`, as one function the top-level CLI calls."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from stt_common.settings import ApiSettings, LocalStackSettings, load
from stt_local import smoke
from stt_local.config import config_from_settings
from stt_local.dotenv import ENV_FILE, ensure_env_file
from stt_local.errors import LocalStackError
from stt_local.prometheus import PrometheusServer
from stt_local.server import Server
from stt_local.services import SERVICE_NAMES, Services, ServiceStatus
from stt_local.stack import NAMES, Stack
from stt_local.tools import MARKER

EXIT_NOT_RUNNING = 3  # like `systemctl status`: something is stopped or unhealthy
PROMETHEUS = "prometheus"
ALL_NAMES = (*NAMES, *SERVICE_NAMES, PROMETHEUS)
TARGETS_WAIT = 20.0  # seconds `up` waits for Prometheus's first scrape of every target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stt local",
        description="The whole stack without Docker: Kafka, Redis, S3 and the stt services.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("up", "write .env if missing, start what is not running, wait until it answers, and "
               "transcribe a bundled sample through the API"),
        ("down", "stop the services, then the servers (SIGTERM, then SIGKILL)"),
        ("status", f"show each process; exit {EXIT_NOT_RUNNING} unless all run and answer"),
    ):  # fmt: skip
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("names", nargs="*", choices=[[], *ALL_NAMES], metavar="NAME",
                         help=f"any of {', '.join(ALL_NAMES)} (default: all; naming some "
                              "skips the smoke check)")  # fmt: skip
        cmd.add_argument("--state-dir", type=Path, help="default: <cache dir>/local")
        cmd.add_argument("--cache-dir", type=Path, help="default: STT_CACHE_DIR or .cache")
        if name == "up":
            cmd.add_argument("--no-smoke", action="store_true", help="skip the smoke check")
    return parser


def main(argv: list[str]) -> int:
    """Run one command and return the exit status. Accepted argv forms:

    - ``["up" | "down" | "status", *names, "--state-dir", DIR, "--cache-dir", DIR]``
      where names are any of kafka, redis, s3, api, projector, transcriber, webhooks,
      prometheus (none means all)
      and both options are optional (state dir defaults to ``<cache dir>/local``, cache dir to
      STT_CACHE_DIR or ``.cache``); ``up`` also takes ``--no-smoke``;
      a leading ``"local"`` is allowed (``["local", "up"]``).

    ``up`` first writes ``./.env`` if missing (random API key and passwords) or appends the keys
    it lacks; without names it then starts the servers and the services and runs the smoke check
    (a bundled sample through the API). The services run in the current directory, so they read
    the same ``.env``.

    Exit 0 on success, 1 on an error (readable lines on stderr), 2 on bad usage;
    ``status`` exits 3 when anything chosen is stopped or unhealthy.
    """
    args_in = list(argv)
    if args_in[:1] == ["local"]:
        args_in = args_in[1:]
    args = _parser().parse_args(args_in)
    try:
        return _local(args)
    except LocalStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _local(args: argparse.Namespace) -> int:
    names: list[str] = args.names
    everything = not names
    if args.command == "up":
        # Before any settings are read: the launcher and the services take them from this file.
        line = ensure_env_file(Path.cwd() / ENV_FILE).line()
        if line:
            print(line, flush=True)
    stack = Stack(config_from_settings(args.state_dir, args.cache_dir))
    api, local = load(ApiSettings), load(LocalStackSettings)
    services = Services(
        stack.config.state_dir, Path.cwd(), api.port, api.host, metrics_port=local.metrics_port
    )
    prometheus = PrometheusServer(
        stack.config.state_dir, local.prometheus_port, services.scrape_targets()
    )
    server_names = None if everything else [n for n in names if n in NAMES]
    service_names = None if everything else [n for n in names if n in SERVICE_NAMES]
    with_prometheus = everything or PROMETHEUS in names

    if args.command == "down":
        if with_prometheus:
            prometheus.stop()
        services.down(service_names)
        stack.down(server_names)
        print("stopped")
        return 0

    if args.command == "status":
        statuses = [*stack.status(server_names), *services.status(service_names)]
        if with_prometheus:
            statuses.append(_prometheus_status(prometheus))
        for status in statuses:
            print(status.line())
        return 0 if all(s.running and s.healthy for s in statuses) else EXIT_NOT_RUNNING

    jars = all((j / MARKER).is_file() for j in (stack.kafka.jars, stack.s3.jars))
    _starting(stack.servers, server_names, "" if jars else "fetching the jars with Maven first")
    statuses = stack.up(server_names)
    for status in statuses:
        print(status.line(), flush=True)
    _starting(services.services, service_names, "the transcriber loads the model")
    service_statuses = services.up(service_names)
    for status in service_statuses:
        print(status.line(), flush=True)
    if with_prometheus:
        prometheus.start()
        service_statuses.append(_prometheus_status(prometheus))
        print(service_statuses[-1].line(), flush=True)
        print(f"  {_targets_line(prometheus)}", flush=True)
    print(f"logs and data: {stack.config.state_dir}", flush=True)
    if not all(s.running and s.healthy for s in [*statuses, *service_statuses]):
        return EXIT_NOT_RUNNING
    if everything and not args.no_smoke:
        _smoke(services)
    return 0


def _starting(processes: Mapping[str, Server], names: list[str] | None, note: str) -> None:
    stopped = [n for n, p in processes.items() if (names is None or n in names) and not p.pid()]
    if stopped:
        print(f"starting {', '.join(stopped)}{f' ({note})' if note else ''} ...", flush=True)


def _prometheus_status(prometheus: PrometheusServer) -> ServiceStatus:
    s = prometheus.status()
    return ServiceStatus(s.name, s.running, s.pid, s.port, s.healthy, s.detail)


def _targets_line(prometheus: PrometheusServer) -> str:
    """How many scrape targets are up, waiting up to TARGETS_WAIT s for the first scrapes."""
    deadline = time.monotonic() + TARGETS_WAIT
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            health = prometheus.targets_health()
        except Exception:  # not answering yet
            health = {}
        if health and all(h == "up" for h in health.values()):
            break
        time.sleep(0.5)
    up = sorted(t for t, h in health.items() if h == "up")
    down = sorted(t for t, h in health.items() if h != "up")
    line = f"scrape targets up: {len(up)}/{len(health)} ({', '.join(up)})"
    return line + (f"; not up: {', '.join(down)}" if down else "")


def _smoke(services: Services) -> None:
    print(f"\nsmoke check: transcribing the bundled sample through {services.api.url} ...",
          flush=True)  # fmt: skip
    result = smoke.run(services.log_paths)
    if not result.transcription:
        raise LocalStackError(
            f"smoke check failed: job {result.request_id} COMPLETED with an empty transcription; "
            "see the service logs:\n" + "\n".join(f"  {p}" for p in services.log_paths)
        )
    duration = float(result.body.get("duration") or 0)
    confidence = float(result.body.get("confidence") or 0)
    language = result.body.get("language")
    print(f'  "{result.transcription}"')
    print(f"  (COMPLETED in {result.seconds:.1f} s: {duration:.1f} s of {language} audio, "
          f"confidence {confidence:.2f})\n")  # fmt: skip
    print(smoke.next_steps(result))
