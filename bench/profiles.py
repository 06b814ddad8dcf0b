"""Turns a cProfile of the API (CPU clock) into CPU microseconds per request, by component."""

from __future__ import annotations

import pstats
from collections import defaultdict
from typing import Any

Key = tuple[str, int, str]

# (substring of the file name, component); the first match wins.
_FILES = [
    ("asyncio/runners.py", "event loop: uvloop I/O and idle"),
    ("/anyio/", "thread-pool hops (sync dependencies)"),
    ("/threading.py", "thread-pool hops (sync dependencies)"),
    ("/concurrent/", "thread-pool hops (sync dependencies)"),
    ("/queue.py", "thread-pool hops (sync dependencies)"),
    ("/uvicorn/", "uvicorn + httptools (HTTP server)"),
    ("/starlette/", "starlette (routing, middleware plumbing)"),
    ("/fastapi/", "fastapi (dependencies, body parsing, response validation)"),
    ("/pydantic", "pydantic (models, JSON)"),
    ("/redis/", "redis client"),
    ("/aiokafka/", "aiokafka producer"),
    ("/kafka/", "aiokafka producer"),
    ("/prometheus_client/", "prometheus metrics"),
    ("/logging/", "logging"),
    ("stt_common/logs.py", "logging"),
    ("/json/", "logging"),
    ("/asyncio/", "asyncio"),
    ("uvloop", "event loop: uvloop I/O and idle"),
    ("stt_api/", "stt_api (routes, guard, rate limit, middleware)"),
    ("stt_common/", "stt_common (job store, messages)"),
]

# Functions whose cumulative CPU is worth naming (file substring, function name, label).
KEY_FUNCTIONS = [
    ("fastapi/routing.py", "serialize_response", "FastAPI response_model validation + dump"),
    ("fastapi/routing.py", "run_endpoint_function", "route function (endpoint body)"),
    ("fastapi/dependencies/utils.py", "solve_dependencies", "FastAPI dependency resolution"),
    ("stt_api/guard.py", "__call__", "ApiGuard middleware: key + rate limit (incl. inside)"),
    ("stt_api/rate_limit.py", "check", "rate limit check (in memory)"),
    ("stt_api/rate_limit.py", "_flush", "rate limit flush (Redis MULTI, off the request path)"),
    ("anyio/_backends/_asyncio.py", "run_sync_in_worker_thread", "sync dependencies in threads"),
    ("stt_common/job_store.py", "get", "JobStore.get (HGET + model_validate_json)"),
    ("stt_common/job_store.py", "create_if_ready",
     "JobStore.create_if_ready (one EVALSHA: epoch, record, unconfirmed event)"),
    ("stt_common/job_store.py", "confirm", "JobStore.confirm (one EVALSHA: full TTL, job lists)"),
    ("stt_api/submit_events.py", "publish", "SubmitPublisher.publish (Kafka send_and_wait)"),
    ("stt_api/http_metrics.py", "__call__", "HttpMetrics middleware (incl. everything inside)"),
    ("stt_api/body_limit.py", "__call__", "BodyLimit middleware (incl. everything inside)"),
    ("stt_common/messages.py", "from_record", "JobResponse.from_record"),
    ("stt_api/routes/transcribe.py", "_respond", "_respond (poll hint + JSON body)"),
    ("logging/__init__.py", "handle", "log records (format + write)"),
    ("prometheus_client/metrics.py", "observe", "prometheus Histogram.observe"),
]


def component(key: Key) -> str | None:
    filename = key[0]
    if filename == "~":  # a C function: its callers' component
        name = key[2]
        if "uvloop" in name:
            return "event loop: uvloop I/O and idle"
        return None
    for needle, name in _FILES:
        if needle in filename:
            return name
    return "other Python"


def summarise(path: str, requests: int) -> dict[str, Any]:
    """CPU per request by component (C functions charged to their callers), and key functions."""
    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values())
    by_component: dict[str, float] = defaultdict(float)
    for key, (_cc, _nc, tt, _ct, callers) in stats.items():
        name = component(key)
        if name is not None:
            by_component[name] += tt
            continue
        spread = sum(c[3] for c in callers.values()) if callers else 0.0
        if spread <= 0:
            by_component["C, no Python caller"] += tt
            continue
        for caller, c in callers.items():
            owner = component(caller) or "C called from C"
            by_component[owner] += tt * c[3] / spread
    per_request = 1e6 / max(1, requests)
    components = sorted(by_component.items(), key=lambda kv: -kv[1])
    functions = []
    for file_part, func, label in KEY_FUNCTIONS:
        ct = sum(
            entry[3]
            for key, entry in stats.items()
            if key[2] == func and file_part in key[0]
        )
        if ct > 0:
            functions.append(
                {
                    "function": label,
                    "cpu_us_per_request": round(ct * per_request, 1),
                    "share": round(ct / total, 3),
                }
            )
    return {
        "requests": requests,
        "cpu_seconds": round(total, 3),
        "cpu_us_per_request": round(total * per_request, 1),
        "components": [
            {"component": name, "cpu_us_per_request": round(t * per_request, 1),
             "share": round(t / total, 3)}
            for name, t in components
            if t / total >= 0.005
        ],
        "key_functions": sorted(functions, key=lambda f: -f["share"]),
    }
