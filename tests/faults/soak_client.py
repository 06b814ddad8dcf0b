"""The soak's clients: a steady submitter and a poller that behave like the guide's client, and
a judge that records every answer the API gave and every answer that broke its contract.

The contract judged (README "Errors", docs/architecture.md "Guarantees"):
- a submit answers 202, or 503 with a JSON `detail`, a numeric `Retry-After` and
  `X-Submit-Outcome: refused|unknown`; the client then resubmits the same request_id;
- a poll of a job that was answered 202 answers 200, or 503 with a JSON `detail` and a numeric
  `Retry-After`; never 404 (the guide's client reads 404 as "expired" and gives up);
- a job seen COMPLETED never answers anything but COMPLETED afterwards;
- no other status, and no 5xx but those 503s.
A request that got no answer at all (the API process was being killed) is counted, not judged:
the client retries it, as it would retry a dropped connection.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from stt_common.messages import JobStatus

OUTCOMES = frozenset({"refused", "unknown"})
SUBMIT_PATIENCE = 120.0  # seconds a client keeps resubmitting one job before giving up on it


@dataclass
class Ledger:
    """Everything the clients saw, shared by their threads (one lock)."""

    answers: Counter[str] = field(default_factory=Counter)  # "POST 202", "GET 503 restoring", …
    no_answer: Counter[str] = field(default_factory=Counter)  # "POST ConnectError", …
    broken: list[str] = field(default_factory=list)  # contract violations, described
    accepted: dict[str, float] = field(default_factory=dict)  # request_id -> when 202 came
    completed: dict[str, dict[str, Any]] = field(default_factory=dict)  # first COMPLETED body
    never_accepted: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> None:
        with self.lock:
            self.answers[key] += 1

    def violation(self, text: str) -> None:
        with self.lock:
            self.broken.append(text)


def _json_detail(resp: httpx.Response) -> bool:
    try:
        body = resp.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("detail"), str) and bool(body["detail"])


def judge_503(resp: httpx.Response, on_submit: bool) -> str | None:
    """What is wrong with a 503 (None: it is the documented one)."""
    if not _json_detail(resp):
        return f"503 without a JSON detail: {resp.text[:200]!r}"
    if not resp.headers.get("Retry-After", "").isdigit():
        return f"503 without a numeric Retry-After: {dict(resp.headers)}"
    if on_submit and resp.headers.get("X-Submit-Outcome") not in OUTCOMES:
        return f"submit 503 without X-Submit-Outcome refused|unknown: {resp.json()['detail']!r}"
    return None


def retry_after(resp: httpx.Response, cap: float = 2.0) -> float:
    value = resp.headers.get("Retry-After", "1")
    return min(cap, float(value)) if value.isdigit() else 1.0


class SoakClient:
    """Submits one job every `every` seconds (each retried with its request_id until 202) and
    polls every accepted job until the end, through `base_url`."""

    def __init__(self, base_url: str, api_key: str, ledger: Ledger) -> None:
        self.base_url = base_url
        self.headers = {"X-API-Key": api_key}
        self.ledger = ledger
        self.stop = threading.Event()
        self.submitting = threading.Event()

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=15)

    def submit_until_accepted(self, rid: str, body: dict[str, Any]) -> None:
        ledger = self.ledger
        deadline = time.monotonic() + SUBMIT_PATIENCE
        with self._client() as http:
            while time.monotonic() < deadline:
                try:
                    resp = http.post("/api/v1/transcribe", json=body)
                except httpx.HTTPError as exc:
                    with ledger.lock:
                        ledger.no_answer[f"POST {type(exc).__name__}"] += 1
                    time.sleep(1)
                    continue
                outcome = resp.headers.get("X-Submit-Outcome", "")
                ledger.count(f"POST {resp.status_code} {outcome}".strip())
                if resp.status_code == 202:
                    with ledger.lock:
                        ledger.accepted[rid] = time.monotonic()
                    return
                if resp.status_code == 503:
                    if (problem := judge_503(resp, on_submit=True)) is not None:
                        ledger.violation(f"{rid}: {problem}")
                    time.sleep(retry_after(resp))
                    continue
                ledger.violation(f"{rid}: submit answered {resp.status_code}: {resp.text[:200]}")
                time.sleep(1)
        with ledger.lock:
            ledger.never_accepted.append(rid)

    def run_submitter(
        self, jobs: list[tuple[str, dict[str, Any]]], every: float, until: float
    ) -> None:
        """Start one job every `every` s until `until` (monotonic) or the jobs run out; wait
        for every one to be accepted (or given up)."""
        self.submitting.set()
        try:
            with ThreadPoolExecutor(6) as pool:
                next_at = time.monotonic()
                for rid, body in jobs:
                    if time.monotonic() >= until or self.stop.is_set():
                        break
                    pool.submit(self.submit_until_accepted, rid, body)
                    next_at += every
                    time.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            self.submitting.clear()

    def poll_once(self, http: httpx.Client, rid: str) -> None:
        ledger = self.ledger
        try:
            resp = http.get(f"/api/v1/transcribe/{rid}")
        except httpx.HTTPError as exc:
            with ledger.lock:
                ledger.no_answer[f"GET {type(exc).__name__}"] += 1
            return
        if resp.status_code == 200:
            status = resp.json().get("status")
            ledger.count(f"GET 200 {status}")
            with ledger.lock:
                seen = ledger.completed.get(rid)
                if status == JobStatus.COMPLETED and seen is None:
                    ledger.completed[rid] = resp.json()
            if seen is not None and status != JobStatus.COMPLETED:
                ledger.violation(f"{rid}: COMPLETED earlier, now {status}")
            return
        ledger.count(f"GET {resp.status_code}")
        if resp.status_code == 503:
            if (problem := judge_503(resp, on_submit=False)) is not None:
                ledger.violation(f"{rid}: {problem}")
        elif resp.status_code == 404:
            ledger.violation(f"{rid}: 404 for a job answered 202 ({resp.text[:120]})")
        else:
            ledger.violation(f"{rid}: poll answered {resp.status_code}: {resp.text[:200]}")

    def poll_all_once(self) -> None:
        with self.ledger.lock:
            rids = list(self.ledger.accepted)
        with self._client() as http:
            for rid in rids:
                self.poll_once(http, rid)

    def run_poller(self, pause: float = 1.0, done_every: int = 5) -> None:
        """Poll every accepted job each round (a finished one every `done_every` rounds) until
        `stop`."""
        rounds = 0
        with self._client() as http:
            while not self.stop.is_set():
                rounds += 1
                with self.ledger.lock:
                    rids = list(self.ledger.accepted)
                    finished = set(self.ledger.completed)
                for rid in rids:
                    if rid not in finished or rounds % done_every == 0:
                        self.poll_once(http, rid)
                    if self.stop.is_set():
                        return
                time.sleep(pause)

    def wait_all_completed(self, timeout: float, logs: Callable[[], str]) -> None:
        """Until every accepted job has been seen COMPLETED (the poller keeps polling)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.ledger.lock:
                missing = set(self.ledger.accepted) - set(self.ledger.completed)
            if not missing and not self.submitting.is_set():
                return
            time.sleep(1)
        raise AssertionError(f"accepted but never COMPLETED: {sorted(missing)}\n{logs()}")
