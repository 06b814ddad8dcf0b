"""The Grafana dashboard and the alert rules against a real Prometheus scraping the real services.

Grafana cannot be installed here, so the dashboard is proven through its queries: the API,
projector, transcriber (real Whisper model) and webhook sender run as subprocesses with their
metrics ports, Debian's Prometheus (the launcher's `PrometheusServer`, its own config and data
dir) scrapes them every second and loads deploy/prometheus/alerts.yml. A job that completes
(webhook delivered), one that fails (bad media; dead-lettered) whose webhook is refused until it
is dead-lettered too, then: every query of every panel parses, returns series over the test's
time range, each panel shows something above zero, every rule evaluates without error, and the
dead-letter alerts fire. Last, the transcriber stops while a job waits, and the expression of
SttNoTranscriberConsuming holds on the real series.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from stt_local.prometheus import ALERT_RULES, PrometheusServer
from stt_testing import processes, speech
from stt_testing.media_server import MediaServer

pytestmark = [pytest.mark.infra, pytest.mark.e2e, pytest.mark.timeout(300)]

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "stt.json"
# What Grafana puts in place of its variables; the window spans a few 1 s scrapes.
GRAFANA_VARIABLES = {"$__rate_interval": "20s", "$__interval": "1s", "$__range": "5m"}


def panels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
    return found


def promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"an unknown Grafana variable in {expr}"
    return expr


class Receiver:
    """Webhook endpoint: /ok/... answers 200, /refuse/... 500."""

    def __init__(self) -> None:
        self.paths: list[str] = []

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.paths.append(self.path)
                self.send_response(200 if self.path.startswith("/ok/") else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Observed:
    prometheus: PrometheusServer
    started: float  # unix time before the first job
    api: processes.Api
    transcriber: processes.Service
    media_url: str

    def get(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.prometheus.url}{path}", params=params, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query", query=expr)["result"]
        return result

    def query_range(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get(
            "/api/v1/query_range",
            query=expr,
            start=f"{self.started:.3f}",
            end=f"{time.time():.3f}",
            step="1",
        )["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.query(expr):
                return found
            time.sleep(0.5)
        raise AssertionError(f"no {expr} in Prometheus after {timeout} s")


@pytest.fixture(scope="module")
def observed(
    infra: Any, whisper_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Observed]:
    workdir = tmp_path_factory.mktemp("observed")
    media = workdir / "media"
    media.mkdir()
    speech.make_speech("the weather is fine today", "en-us", media / "speech.wav")
    (media / "not-audio.mp3").write_bytes(b"<html>this is a web page, not audio</html>" * 50)
    prefix = "obs" + uuid.uuid4().hex[:6]
    env = processes.service_env(
        infra.env(),
        prefix=prefix,
        STT_MODEL=str(whisper_model_dir),
        KAFKA_WEBHOOKS_GROUP=f"{prefix}-webhooks",
        STT_WEBHOOK_SECRET="observability-test-secret-0123456789",
        STT_WEBHOOK_ALLOW_HOSTS="127.0.0.1",
        STT_WEBHOOK_RETRY_SECONDS="2",
        STT_WEBHOOK_BACKOFF="0.3",
        STT_METRICS_HOST="127.0.0.1",
        STT_METRICS_LAG_EVERY="1",
    )
    ports = {kind: processes.free_port() for kind in ("projector", "transcriber", "webhooks")}
    api = processes.api(env, workdir)
    workers = [
        processes.worker(kind, {**env, "STT_METRICS_PORT": str(port)}, workdir)
        for kind, port in ports.items()
    ]
    targets = {"stt-api": [f"127.0.0.1:{api.port}"]} | {
        f"stt-{kind}": [f"127.0.0.1:{port}"] for kind, port in ports.items()
    }
    prometheus = PrometheusServer(
        workdir / "state", processes.free_port(), targets, rules=ALERT_RULES, interval="1s"
    )
    receiver = Receiver()
    with MediaServer(media) as server:
        try:
            api.start()
            for worker in workers:
                worker.start()
            prometheus.start()
            api.wait_ready()
            for worker, ready in zip(
                workers, ("projector ready", "ready", "webhooks ready"), strict=True
            ):
                worker.wait_for_log(ready, timeout=120)
            seen = Observed(prometheus, time.time(), api, workers[1], server.url)
            seen.wait_for('count(up{job=~"stt-.*"} == 1) == 4')
            time.sleep(2)  # a scrape of every counter before the jobs: rates see them move
            _run_jobs(api, server.url, receiver.url)
            # The refused webhook is retried for 2 s, then dead-lettered: the last thing to move.
            seen.wait_for('stt_webhook_deliveries_total{outcome="dead_lettered"} > 0')
            seen.wait_for('max(stt_kafka_topic_end_offset{role="dlq"}) >= 2')
            time.sleep(3)  # a few more scrapes and rule evaluations
            yield seen
        finally:
            prometheus.stop()
            for service in (api, *reversed(workers)):
                service.stop()
            receiver.close()


def _run_jobs(api: processes.Api, media_url: str, hooks_url: str) -> None:
    jobs = {
        "ok-" + uuid.uuid4().hex[:8]: ("speech.wav", "ok", "COMPLETED"),
        "bad-" + uuid.uuid4().hex[:8]: ("not-audio.mp3", "refuse", "FAILED"),
    }
    headers = {"X-API-Key": processes.API_KEY}
    with httpx.Client(base_url=api.url, headers=headers, timeout=10) as http:
        for rid, (name, hook, _) in jobs.items():
            body = {
                "request_id": rid,
                "media_url": f"{media_url}/{name}",
                "language": "en",
                "callback_url": f"{hooks_url}/{hook}/{rid}",
            }
            assert http.post("/api/v1/transcribe", json=body).status_code == 202
        deadline = time.monotonic() + 120
        for rid, (_, _, status) in jobs.items():
            while (now := http.get(f"/api/v1/transcribe/{rid}").json())["status"] != status:
                assert now["status"] in ("PENDING", "PROCESSING"), now
                assert time.monotonic() < deadline, f"{rid} still {now}"
                time.sleep(0.2)


def test_the_dashboard_file_is_importable() -> None:
    board = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])


@pytest.mark.parametrize("panel", panels(), ids=lambda p: p["title"])
def test_every_panel_query_returns_data(observed: Observed, panel: dict[str, Any]) -> None:
    highest = -math.inf
    for target in panel["targets"]:
        series = observed.query_range(promql(target["expr"]))
        assert series, f"{panel['title']}: {target['expr']} returned nothing"
        values = [float(v) for s in series for _, v in s["values"]]
        finite = [v for v in values if math.isfinite(v)]
        assert finite, f"{panel['title']}: {target['expr']} has no number (only NaN/Inf)"
        highest = max(highest, *finite)
    assert highest > 0, f"{panel['title']}: every query stayed at 0 through the jobs"


def test_every_rule_evaluates_and_the_dead_letter_alerts_fire(observed: Observed) -> None:
    groups = observed.get("/api/v1/rules")["groups"]
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert len(rules) >= 12
    for name, rule in rules.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"
    firing = {a["labels"]["alertname"] for a in observed.get("/api/v1/alerts")["alerts"]}
    assert {"SttDeadLettersArriving", "SttWebhooksDeadLettered"} <= firing, firing
    # Everything is up and consuming: none of the outage alerts may fire on a healthy stack.
    outages = {"SttNoTranscriberConsuming", "SttKafkaUnreachable", "SttRedisUnreachable"}
    assert not firing & outages, firing


def test_the_no_transcriber_rule_holds_on_the_real_series_once_the_last_one_stops(
    observed: Observed,
) -> None:
    """The rule's own expression (its `for:` aside), on what the projector exports from the
    broker after the only transcriber left its group while a job waits. Runs last: it stops it."""
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    (rule,) = [
        r for g in groups for r in g["rules"] if r.get("alert") == "SttNoTranscriberConsuming"
    ]
    assert not observed.query(rule["expr"])  # a transcriber is there
    observed.transcriber.stop()  # SIGTERM: it leaves the group
    _submit_unserved(observed)
    (firing,) = observed.wait_for(rule["expr"], timeout=60)
    assert float(firing["value"][1]) >= 1  # the waiting job


def _submit_unserved(observed: Observed) -> None:
    """Submit one job that nobody will take."""
    rid = "wait-" + uuid.uuid4().hex[:8]
    body = {"request_id": rid, "media_url": f"{observed.media_url}/speech.wav"}
    response = httpx.post(
        f"{observed.api.url}/api/v1/transcribe",
        json=body,
        headers={"X-API-Key": processes.API_KEY},
        timeout=10,
    )
    assert response.status_code == 202, response.text
