"""`stt jobs list | show`: the caller's jobs through the HTTP API (the SDK's `list_jobs`).

    stt jobs list --status FAILED --since 1h          # the last hour's failures
    stt jobs list --metadata post_id=42 --json         # one JSON object per line
    stt jobs show REQUEST_ID                           # the job as a poll answers it (JSON)

The API and key are found as for `stt transcribe` (--url / STT_API_URL, --api-key / STT_API_KEY
or the first of STT_API_KEYS). Exit status: 0, 1 (API error or unknown job), 2 usage.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from datetime import UTC, datetime, timedelta

from stt_cli.transcribe import DEFAULT_URL, EXIT_FAILED, EXIT_USAGE, _config, api_key
from stt_client import AuthenticationError, Job, SttClient, SttError

STATUSES = ("PROCESSING", "COMPLETED", "FAILED")
_AGO = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def since_of(text: str, now: datetime | None = None) -> datetime:
    """`30m`, `2h`, `7d` ago, or an ISO 8601 time (UTC when it names no zone)."""
    ago = _AGO.match(text)
    if ago:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since takes 30m, 2h, 7d or an ISO 8601 time, not {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def metadata_of(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("--metadata takes KEY=VALUE")
    return key, value


def line_of(job: Job) -> str:
    when = job.submitted_at.isoformat(timespec="seconds") if job.submitted_at else "-"
    note = job.error or (f"{job.stage} {job.progress:.0%}" if job.progress else job.stage) or ""
    return "\t".join((when, job.status, job.request_id, note))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stt jobs", description="List and show your jobs.")
    p.add_argument("--url", help=f"API base URL (STT_API_URL, default {DEFAULT_URL})")
    p.add_argument("--api-key", help="X-API-Key (STT_API_KEY, or the first of STT_API_KEYS)")
    sub = p.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="your jobs, newest first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--since", type=since_of, help="30m, 2h, 7d, or an ISO 8601 time")
    listing.add_argument("--metadata", type=metadata_of, metavar="KEY=VALUE")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--tenant", help="admin keys: another tenant, or * for every tenant")
    show = sub.add_parser("show", help="one job, as a poll answers it (JSON)")
    show.add_argument("request_id")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    config = _config()
    base_url = args.url or config.get("STT_API_URL") or DEFAULT_URL
    key = args.api_key or api_key(config)
    if args.command == "list" and args.limit < 1:
        print("stt jobs: --limit must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    with SttClient(base_url, key) as stt:
        try:
            if args.command == "show":
                job = stt.get(args.request_id)
                print(json.dumps(job.model_dump(mode="json", exclude_none=True), indent=2))
                return 0
            jobs = stt.list_jobs(
                status=args.status,
                since=args.since,
                metadata=args.metadata,
                page_size=min(args.limit, 1000),
                tenant=args.tenant,
            )
            for job in itertools.islice(jobs, args.limit):
                if args.json:
                    print(json.dumps(job.model_dump(mode="json", exclude_none=True)))
                else:
                    print(line_of(job))
            return 0
        except SttError as exc:
            hint = " (--api-key, STT_API_KEY or STT_API_KEYS)"
            print(
                f"stt jobs: {exc}{hint if isinstance(exc, AuthenticationError) else ''}",
                file=sys.stderr,
            )
            return EXIT_FAILED
