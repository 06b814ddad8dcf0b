"""The webhooks service's parts without Kafka: the message field, the body, the SSRF guard, one
attempt against a local receiver, the retry loop's bounds, and which offsets may be committed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from stt_common.consume.offsets import Offsets
from stt_common.messages import JobStatus, ResultEvent, SubmitEvent, TranscribeRequest
from stt_common.settings import SettingsError, WebhookSettings
from stt_webhooks.delivery import Deliverer, backoff, body_of
from stt_webhooks.handler import webhook_of
from stt_webhooks.http_post import AttemptFailed, post, shown
from stt_webhooks.main import check_signing

MEDIA = "http://media.example/a.wav"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example/x",
        "minio://bucket/key",
        "https://user:pw@hooks.example/x",
        "https:///nohost",
        "https://hooks.example/a b",
        "https://hooks.example:99999/x",
        "https://hooks.example/" + "a" * 5000,
    ],
)
def test_callback_url_rules(url: str) -> None:
    with pytest.raises(ValidationError, match="callback_url"):
        TranscribeRequest(request_id="r", media_url=MEDIA, callback_url=url)
    with pytest.raises(ValidationError, match="callback_url"):
        SubmitEvent(request_id="r", media_url=MEDIA, callback_url=url)


def test_callback_url_is_optional_and_never_in_the_body() -> None:
    assert TranscribeRequest(request_id="r", media_url=MEDIA).callback_url is None
    event = ResultEvent(
        request_id="r1",
        status=JobStatus.COMPLETED,
        transcription="hello",
        callback_url="https://hooks.example/stt?token=x",
    )
    body = json.loads(body_of(event))
    assert body["status"] == "COMPLETED" and body["transcription"] == "hello"
    assert "callback_url" not in body and "token" not in json.dumps(body)


def record(value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("results", 0, 0, 0, 0, b"r1", value, None, 2, len(value), ())


@pytest.mark.parametrize(
    ("fields", "wanted"),
    [
        ({"status": "COMPLETED", "callback_url": "https://h.example/x"}, True),
        ({"status": "FAILED", "error": "boom", "callback_url": "https://h.example/x"}, True),
        ({"status": "PROCESSING", "stage": "queued", "callback_url": "https://h.example/x"}, False),
        ({"status": "COMPLETED"}, False),
    ],
)  # fmt: skip
def test_only_terminal_results_with_a_callback_are_webhooks(
    fields: dict[str, str], wanted: bool
) -> None:
    value = json.dumps({"request_id": "r1", **fields}).encode()
    assert (webhook_of(record(value)) is not None) is wanted
    assert webhook_of(record(b"not json")) is None


def test_shown_url_drops_query_and_credentials() -> None:
    assert shown("https://u:p@hooks.example:8443/a/b?token=x#f") == "https://hooks.example:8443/a/b"


def test_no_secret_refuses_to_start_unless_allowed() -> None:
    with pytest.raises(SettingsError, match="STT_WEBHOOK_SECRET"):
        check_signing(WebhookSettings(secret=None))
    check_signing(WebhookSettings(secret=None, allow_unsigned=True))
    check_signing(WebhookSettings(secret="k"))


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    for attempt in range(1, 12):
        delay = backoff(attempt, 1.0, 60.0)
        assert min(60.0, 2.0 ** (attempt - 1)) * 0.5 <= delay <= min(60.0, 2.0 ** (attempt - 1))


def test_offsets_commit_only_a_finished_prefix() -> None:
    tp, other = TopicPartition("t", 0), TopicPartition("t", 1)
    offsets = Offsets()
    for o in (5, 6, 7):
        offsets.take(tp, o)
    offsets.take(other, 0)
    offsets.finish(tp, 7)
    offsets.finish(other, 0)
    assert offsets.committable() == {other: 1}  # 5 and 6 still running
    offsets.finish(tp, 5)
    assert offsets.committable() == {tp: 6}
    offsets.finish(tp, 6)
    assert offsets.committable() == {tp: 8}
    assert offsets.committable() == {}
    offsets.forget(tp)
    offsets.finish(tp, 9)  # a late finish of a revoked partition is ignored
    assert offsets.committable() == {}


class Receiver:
    """Answers each POST with the next scripted status (the last one repeats); records them."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((dict(self.headers), body))
                index = min(len(receiver.requests), len(receiver.statuses)) - 1
                self.send_response(receiver.statuses[index])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(getattr(request, "param", [200]))
    yield server
    server.close()


LOCAL = WebhookSettings(
    secret="k", allow_hosts=["127.0.0.1"], backoff=0.05, timeout=5
)
EVENT = ResultEvent(request_id="r1", status=JobStatus.COMPLETED, transcription="hi")


async def test_loopback_is_refused_unless_allow_listed(receiver: Receiver) -> None:
    with pytest.raises(AttemptFailed, match=r"Refused .*127\.0\.0\.1 is a loopback") as caught:
        await post(receiver.url, b"{}", {}, WebhookSettings(secret="k"))
    assert caught.value.permanent and receiver.requests == []
    await post(receiver.url, b"{}", {}, LOCAL)
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    ("receiver", "permanent"),
    [([500], False), ([503], False), ([408], False), ([429], False), ([400], True),
     ([404], True), ([410], True), ([301], True)],
    indirect=["receiver"],
)  # fmt: skip
async def test_which_answers_are_worth_retrying(receiver: Receiver, permanent: bool) -> None:
    with pytest.raises(AttemptFailed) as caught:
        await post(receiver.url, b"{}", {}, LOCAL)
    assert caught.value.permanent is permanent


@pytest.mark.parametrize("receiver", [[503, 503, 204]], indirect=True)
async def test_deliver_retries_until_a_2xx(receiver: Receiver) -> None:
    outcome = await Deliverer(LOCAL).deliver(EVENT, receiver.url, time.time() + 10)
    assert outcome.delivered and outcome.attempts == 3
    assert [h["X-STT-Delivery-Attempt"] for h, _ in receiver.requests] == ["1", "2", "3"]


@pytest.mark.parametrize("receiver", [[500]], indirect=True)
async def test_deliver_stops_at_the_deadline(receiver: Receiver) -> None:
    started = time.monotonic()
    outcome = await Deliverer(LOCAL).deliver(EVENT, receiver.url, time.time() + 0.5)
    assert not outcome.delivered and outcome.attempts >= 2
    assert "gave up" in outcome.reason and "500" in outcome.reason
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("receiver", [[404]], indirect=True)
async def test_deliver_does_not_retry_a_permanent_answer(receiver: Receiver) -> None:
    outcome = await Deliverer(LOCAL).deliver(EVENT, receiver.url, time.time() + 10)
    assert not outcome.delivered and outcome.attempts == 1 and "404" in outcome.reason


async def test_unsigned_only_without_a_secret(receiver: Receiver) -> None:
    unsigned = LOCAL.model_copy(update={"secret": None})
    await Deliverer(unsigned).deliver(EVENT, receiver.url, time.time() + 5)
    headers, _ = receiver.requests[0]
    assert "X-STT-Signature" not in headers and headers["X-STT-Request-Id"] == "r1"
