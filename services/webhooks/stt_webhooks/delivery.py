"""One webhook from first try to outcome: sign, POST, back off and retry until the deadline.

The deadline is the result's time plus STT_WEBHOOK_RETRY_SECONDS, so a restart of the service does
not extend it; at least one attempt is always made. Each attempt is signed afresh, so its
timestamp stays within the receiver's tolerance however long the retries took.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from stt_common import metrics
from stt_common.messages import JobRecord, JobResponse, ResultEvent
from stt_common.settings import WebhookSettings
from stt_webhooks.http_post import AttemptFailed, post
from stt_webhooks.signing import SIGNATURE_HEADER, signature

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryOutcome:
    delivered: bool
    attempts: int
    reason: str = ""  # why it was not delivered


def body_of(event: ResultEvent) -> bytes:
    """The job as `GET /api/v1/transcribe/{id}` returns it."""
    response = JobResponse.from_record(JobRecord.from_result(event))
    return response.model_dump_json(exclude_none=True).encode()


def backoff(attempt: int, first: float, longest: float) -> float:
    """Delay after failed attempt `attempt` (1, 2, ...): exponential, capped, with jitter."""
    return min(longest, first * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)


class Deliverer:
    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        secret = settings.secret
        self.secret = secret.get_secret_value() if secret is not None else None
        self.slots = asyncio.Semaphore(settings.concurrency)  # POSTs at once

    def headers(self, event: ResultEvent, body: bytes, attempt: int) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "stt-webhooks",
            "X-STT-Request-Id": event.request_id,
            "X-STT-Delivery-Attempt": str(attempt),
        }
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = signature(body, self.secret)
        return headers

    async def deliver(self, event: ResultEvent, url: str, deadline: float) -> DeliveryOutcome:
        """Deliver until a 2xx, a permanent failure, or `deadline` (time.time())."""
        body = body_of(event)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.slots:
                    await post(url, body, self.headers(event, body, attempt), self.settings)
            except AttemptFailed as exc:
                metrics.WEBHOOK_ATTEMPTS.labels(exc.result).inc()
                if exc.permanent:
                    return DeliveryOutcome(False, attempt, exc.message)
                left = deadline - time.time()
                if left <= 0:
                    return DeliveryOutcome(False, attempt, self._gave_up(attempt, exc))
                delay = backoff(
                    attempt, self.settings.backoff, self.settings.backoff_max
                )
                delay = min(max(delay, exc.retry_after or 0.0), left)
                log.info(
                    "webhook attempt failed (%s); retrying in %.1fs",
                    exc.message,
                    delay,
                    extra={"request_id": event.request_id, "attempt": attempt},
                )
                await asyncio.sleep(delay)
                continue
            metrics.WEBHOOK_ATTEMPTS.labels("2xx").inc()
            return DeliveryOutcome(True, attempt)

    def _gave_up(self, attempts: int, last: AttemptFailed) -> str:
        window = self.settings.retry_seconds
        return (
            f"gave up after {attempts} attempts within {window:g} s "
            f"(STT_WEBHOOK_RETRY_SECONDS); last: {last.message}"
        )
