"""`python -m bench [SCENARIO ...] [--quick]` (`make bench`: all of `SCENARIOS`).

Starts the real stack once (Kafka, Redis and S3 from `stt_testing.infra`, the stt services as real
processes), runs the scenarios in order, and writes `bench/results/latest.{json,md}`,
`bench/results/{latency,scale}.png` and `docs/performance.md`. Scenarios not run this time keep
their figures from the previous `latest.json`. About 35 minutes in full on 2 cores (`quality`
about 15 of them: three configurations over the 482-word speech set), under 8 with --quick
(shorter files, fewer repeats, a 5-minute file instead of the 30-minute one, fewer quality
conditions); `short` adds about 5 minutes per cross-job batch size at 60 jobs (estimated from its
quick runs; 12 jobs and one size with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from bench import api_load, lanes, long, overhead, quality, report, scale, short
from bench.stack import CPU_COUNT, REPO, RESULTS, open_bench

SCENARIOS = {
    "overhead": overhead, "api": api_load, "scale": scale, "long": long, "quality": quality,
    "lanes": lanes, "short": short,
}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("faster-whisper", "ctranslate2", "fastapi", "uvicorn", "aiokafka", "redis"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
            timeout=10, check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def previous() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((RESULTS / "latest.json").read_text())
        return data
    except (OSError, ValueError):
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="a few minutes instead of ~20")
    parser.add_argument("--lanes-backlog", type=int, metavar="N",
                        help="scenario lanes: N batch jobs in the backlog (240; --quick 60)")
    parser.add_argument("--report-only", action="store_true",
                        help="only write the report and plots again from latest.json")
    parser.add_argument("--short-jobs", type=int, metavar="N",
                        help="jobs in the `short` scenario's queue (default 60; 12 with --quick)")
    parser.add_argument("--batch-sizes", metavar="K[,K...]",
                        help="`short`: run the service at these STT_CROSS_JOB_BATCH values")
    args = parser.parse_args(argv)
    if args.report_only:
        written = report.write(previous())
        print("[bench] wrote " + ", ".join(str(p.relative_to(REPO)) for p in written))
        return 0
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    chosen = args.scenarios or list(SCENARIOS)
    started = time.monotonic()
    old = previous()
    data: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "cpu_count": CPU_COUNT,
        "commit": commit(),
        "versions": versions(),
        "scenarios": dict(old.get("scenarios", {})),
        "scenario_seconds": dict(old.get("scenario_seconds", {})),
    }
    failed: list[str] = []
    options = {
        "short_jobs": args.short_jobs,
        "batch_sizes": args.batch_sizes,
        "lanes_backlog": args.lanes_backlog,
    }
    with open_bench(args.quick, options) as bench:
        data |= bench.model.describe()
        for name in chosen:
            print(f"[bench] {name}{' (quick)' if args.quick else ''} ...", flush=True)
            t0 = time.monotonic()
            load_before = os.getloadavg()[0]
            try:
                result = asyncio.run(SCENARIOS[name].run(bench))
            except Exception:
                traceback.print_exc()
                failed.append(name)
                continue
            finally:
                bench.stop_all()
            result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            result["quick"] = args.quick
            # Other work on the machine shows here: the benchmark itself keeps about 1-2 busy.
            result["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            data["scenarios"][name] = result
            data["scenario_seconds"][name] = round(time.monotonic() - t0, 1)
            print(f"[bench] {name} done in {time.monotonic() - t0:.0f} s", flush=True)
            if name == "overhead":
                data["overhead_ratio"] = result["overhead_ratio"]
            report.write(finish(data, old))  # after each scenario: a crash later loses nothing
    data["run_seconds"] = round(time.monotonic() - started, 1)
    written = report.write(finish(data, old))
    print("[bench] wrote " + ", ".join(str(p.relative_to(REPO)) for p in written))
    if failed:
        print(f"[bench] failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def finish(data: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys in a stable order; the overhead ratio kept from before if not re-run."""
    out = dict(data)
    if "overhead_ratio" not in out and "overhead" in out["scenarios"]:
        out["overhead_ratio"] = out["scenarios"]["overhead"]["overhead_ratio"]
    first = ["generated_at", "quick", "overhead_ratio", "cpu_count", "model", "device",
             "compute_type", "cpu_threads", "beam_size", "vad_filter", "commit", "versions"]
    return {k: out[k] for k in first if k in out} | {k: v for k, v in out.items()
                                                      if k not in first}


if __name__ == "__main__":
    sys.exit(main())
