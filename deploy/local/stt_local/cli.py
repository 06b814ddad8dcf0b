"""`stt local up|down|status`, as one function the top-level CLI calls."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stt_local.config import config_from_settings
from stt_local.errors import LocalStackError
from stt_local.stack import NAMES, Stack

EXIT_NOT_RUNNING = 3  # like `systemctl status`: some server is stopped or unhealthy


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stt local", description="Local Kafka, Redis and S3.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("up", "start what is not running and wait until it answers"),
        ("down", "stop the servers (SIGTERM, then SIGKILL)"),
        ("status", f"show each server; exit {EXIT_NOT_RUNNING} unless all run and answer"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("servers", nargs="*", choices=[[], *NAMES], metavar="SERVER",
                         help=f"any of {', '.join(NAMES)} (default: all)")  # fmt: skip
        cmd.add_argument("--state-dir", type=Path, help="default: <cache dir>/local")
        cmd.add_argument("--cache-dir", type=Path, help="default: STT_CACHE_DIR or .cache")
    return parser


def main(argv: list[str]) -> int:
    """Run one command and return the exit status. Accepted argv forms:

    - ``["up" | "down" | "status", *servers, "--state-dir", DIR, "--cache-dir", DIR]``
      where servers are any of kafka, redis, s3 (none means all) and both options are optional
      (state dir defaults to ``<cache dir>/local``, cache dir to STT_CACHE_DIR or ``.cache``);
      a leading ``"local"`` is allowed (``["local", "up"]``).

    Exit 0 on success, 1 on an error (one readable line on stderr), 2 on bad usage;
    ``status`` exits 3 when any chosen server is stopped or unhealthy.
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
    stack = Stack(config_from_settings(args.state_dir, args.cache_dir))
    names = args.servers or None
    if args.command == "down":
        stack.down(names)
        print("stopped")
        return 0
    statuses = stack.up(names) if args.command == "up" else stack.status(names)
    for status in statuses:
        print(status.line())
    if args.command == "up":
        print(f"logs and data: {stack.config.state_dir}")
    ok = all(s.running and s.healthy for s in statuses)
    return 0 if ok else EXIT_NOT_RUNNING
