"""OpenTelemetry export: off by default (neither its tracing SDK nor an exporter is imported),
and with OTEL_EXPORTER_OTLP_ENDPOINT set, one job's spans from the API, the transcriber (real
model), the projector and the webhook sender arrive at an OTLP/HTTP receiver run by this test
(decoded with opentelemetry-proto) as one trace, each span the child of the one before it: the
caller's span > submit > publish > consume > download / probe / transcribe > decode;
consume > result publish > projection and webhook.
"""

from __future__ import annotations

import subprocess
import sys
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
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from stt_testing import processes, speech
from stt_testing.media_server import MediaServer

pytestmark = [pytest.mark.infra, pytest.mark.e2e, pytest.mark.timeout(300)]


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str


class OtlpReceiver:
    """POST /v1/traces (OTLP/HTTP, protobuf): keeps every span it is sent; other paths 200."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/v1/traces":
                    receiver.take(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def take(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            service = next(
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            )
            for scope in resource_spans.scope_spans:
                with self.lock:
                    self.spans += [
                        Span(
                            service,
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                        )
                        for s in scope.spans
                    ]

    def of_trace(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Hooks:
    """The job's callback_url: answers 200."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture(scope="module")
def traced(
    infra: Any, whisper_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[processes.Api, OtlpReceiver, str, list[processes.Service]]]:
    workdir = tmp_path_factory.mktemp("otel")
    media = workdir / "media"
    media.mkdir()
    speech.make_speech("tracing one job", "en-us", media / "speech.wav")
    receiver = OtlpReceiver()
    hooks = Hooks()
    prefix = "otel" + uuid.uuid4().hex[:6]
    env = processes.service_env(
        infra.env(),
        prefix=prefix,
        STT_MODEL=str(whisper_model_dir),
        KAFKA_WEBHOOKS_GROUP=f"{prefix}-webhooks",
        STT_WEBHOOK_SECRET="otel-test-secret-0123456789abcdef",
        STT_WEBHOOK_ALLOW_HOSTS="127.0.0.1",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="200",  # ms: spans leave quickly, not every 5 s
    )
    api = processes.api(env, workdir)
    workers = [processes.worker(k, env, workdir) for k in ("projector", "transcriber", "webhooks")]
    with MediaServer(media) as server:
        try:
            api.start()
            for worker in workers:
                worker.start()
            api.wait_ready()
            for worker, ready in zip(
                workers, ("projector ready", "ready", "webhooks ready"), strict=True
            ):
                worker.wait_for_log(ready, timeout=120)
            yield api, receiver, f"{server.url}/speech.wav|{hooks.url}/ok", workers
        finally:
            for service in (api, *reversed(workers)):
                service.stop()
            receiver.close()
            hooks.httpd.shutdown()


NAMES = {
    "submit", "publish", "consume", "download", "probe", "transcribe", "decode",
    "result publish", "projection", "webhook",
}  # fmt: skip


def test_one_job_is_one_trace_across_api_transcriber_projector_and_webhooks(
    traced: tuple[processes.Api, OtlpReceiver, str, list[processes.Service]],
) -> None:
    api, receiver, urls, workers = traced
    media_url, hook_url = urls.split("|")
    trace_id, caller = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    rid = "otel-" + uuid.uuid4().hex[:8]
    headers = {"X-API-Key": processes.API_KEY, "traceparent": f"00-{trace_id}-{caller}-01"}
    with httpx.Client(base_url=api.url, headers=headers, timeout=10) as http:
        body = {"request_id": rid, "media_url": media_url, "callback_url": hook_url}
        assert http.post("/api/v1/transcribe", json=body).status_code == 202
        deadline = time.monotonic() + 120
        while http.get(f"/api/v1/transcribe/{rid}").json()["status"] != "COMPLETED":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    deadline = time.monotonic() + 30
    while not NAMES <= {s.name for s in receiver.of_trace(trace_id)}:
        assert time.monotonic() < deadline, (
            f"spans of the trace: {receiver.of_trace(trace_id)}\n"
            + "\n".join(s.tail(10) for s in (api, *workers))
        )
        time.sleep(0.2)
    spans = receiver.of_trace(trace_id)
    by_id = {s.span_id: s for s in spans}

    def only(name: str) -> Span:
        (found,) = [s for s in spans if s.name == name]
        return found

    def parent(span: Span) -> str:
        return by_id[span.parent_id].name

    submit = only("submit")
    assert submit.service == "stt-api" and submit.parent_id == caller
    assert parent(only("publish")) == "submit"
    consume = only("consume")
    assert consume.service == "stt-transcriber" and parent(consume) == "publish"
    for step in ("download", "probe", "transcribe", "result publish"):
        assert parent(only(step)) == "consume", step
    assert parent(only("decode")) == "transcribe"
    projections = [s for s in spans if s.name == "projection"]
    assert {s.service for s in projections} == {"stt-projector"}
    # The submit event and the result event are each projected, under the span that sent them.
    assert {parent(s) for s in projections} >= {"publish", "result publish"}
    webhook = only("webhook")
    assert webhook.service == "stt-webhooks" and parent(webhook) == "result publish"
    # Every other span (progress events' projections, the polls that sent the same traceparent)
    # hangs off an exported span or off the caller's: no span names a parent nobody exported.
    orphans = [s for s in spans if s.parent_id not in by_id and s.parent_id != caller]
    assert not orphans, orphans
    assert {s.name for s in spans if s.parent_id == caller} <= {"submit", "HTTP GET"}


def test_without_the_endpoint_no_tracing_sdk_or_exporter_is_loaded() -> None:
    code = (
        "import sys\n"
        # FastAPI imports the OpenTelemetry API (and metrics SDK) by itself when installed;
        # what is ours to leave alone is the tracing SDK and the exporter.
        "OURS = ('opentelemetry.sdk.trace', 'opentelemetry.exporter')\n"
        "import stt_api.app, stt_transcriber.main, stt_projector.main, stt_webhooks.main\n"
        "from stt_common import otel\n"
        "assert otel.setup('api') is False and not otel.enabled()\n"
        "loaded = [m for m in sys.modules if m.startswith(OURS)]\n"
        "assert not loaded, loaded\n"
    )
    env = {k: v for k, v in processes.service_env({}, "x").items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
