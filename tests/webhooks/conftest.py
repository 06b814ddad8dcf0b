"""A real stack with the fake engine plus `stt webhooks`, and a receiver that records POSTs."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from stt_testing import processes, speech
from stt_testing.media_server import MediaServer

SECRET = "webhook-test-" + uuid.uuid4().hex
RETRY_SECONDS = 4.0  # the whole retry window of a failing receiver


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    arrived: float
    finished: float | None = None  # when the answer was sent (None while a slow one hangs)


class Receiver:
    """POST paths: /ok/<id> 200; /flaky/<n>/<id> 503 n times, then 200; /fail/<id> always 500;
    /slow/<seconds>/<id> answers 200 after sleeping."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hit = Hit(self.path, dict(self.headers), body, time.monotonic())
                with receiver.lock:
                    receiver.hits.append(hit)
                    earlier = sum(1 for h in receiver.hits if h.path == self.path) - 1
                parts = self.path.strip("/").split("/")
                status = 200
                if parts[0] == "flaky" and earlier < int(parts[1]):
                    status = 503
                elif parts[0] == "fail":
                    status = 500
                elif parts[0] == "slow":
                    time.sleep(float(parts[1]))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                hit.finished = time.monotonic()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def to(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 20) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(hits := self.to(path)) >= count:
                return hits
            time.sleep(0.05)
        raise TimeoutError(f"{path}: {len(self.to(path))} of {count} POSTs after {timeout}s")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class HookStack:
    env: dict[str, str]
    media: MediaServer
    receiver: Receiver
    api: processes.Api
    services: list[processes.Service] = field(default_factory=list)

    def http(self) -> httpx.Client:
        headers = {"X-API-Key": processes.API_KEY}
        return httpx.Client(base_url=self.api.url, headers=headers, timeout=10)

    def submit(self, rid: str, callback_url: str | None) -> dict[str, Any]:
        body = {"request_id": rid, "media_url": f"{self.media.url}/hello.wav", "language": "en"}
        if callback_url is not None:
            body["callback_url"] = callback_url
        with self.http() as http:
            response = http.post("/api/v1/transcribe", json=body)
        assert response.status_code == 202, response.text
        result: dict[str, Any] = response.json()
        return result

    def get(self, rid: str) -> dict[str, Any]:
        with self.http() as http:
            result: dict[str, Any] = http.get(f"/api/v1/transcribe/{rid}").json()
            return result

    def wait_status(self, rid: str, status: str = "COMPLETED", timeout: float = 30) -> float:
        """Seconds until GET shows `status`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.get(rid).get("status") == status:
                return time.monotonic() - started
            time.sleep(0.1)
        raise TimeoutError(f"{rid} not {status} after {timeout}s: {self.get(rid)}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.tail(15)}" for s in [self.api, *self.services])


@pytest.fixture(scope="module")
def hooks(infra: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HookStack]:
    workdir = tmp_path_factory.mktemp("webhooks")
    media_dir: Path = tmp_path_factory.mktemp("webhook-media")
    speech.make_speech("hello there", "en-us", media_dir / "hello.wav")
    prefix = "hooks" + uuid.uuid4().hex[:6]
    env = processes.service_env(
        infra.env(),
        prefix=prefix,
        STT_ENGINE="fake",
        KAFKA_WEBHOOKS_GROUP=f"{prefix}-webhooks",
        STT_WEBHOOK_SECRET=SECRET,
        STT_WEBHOOK_ALLOW_HOSTS="127.0.0.1",
        STT_WEBHOOK_RETRY_SECONDS=str(RETRY_SECONDS),
        STT_WEBHOOK_BACKOFF="0.3",
        STT_WEBHOOK_TIMEOUT="30",  # the slow receiver must still be hanging when checked
    )
    receiver = Receiver()
    with MediaServer(media_dir) as media:
        api = processes.api(env, workdir).start()
        stack = HookStack(env, media, receiver, api)
        try:
            for kind in ("projector", "transcriber", "webhooks"):
                stack.services.append(processes.worker(kind, env, workdir).start())
            api.wait_ready()
            for service, ready in zip(
                stack.services, ("projector ready", "ready", "webhooks ready"), strict=True
            ):
                service.wait_for_log(ready)
            yield stack
        finally:
            for service in (*stack.services, api):
                service.stop()
            receiver.close()
