"""The integration guide's own client, "Python (requests)", as written.

The guide's `get_stt_result` line for line: submit with a 10 s timeout, poll at once, then sleep
a fixed `wait_time = 3` seconds between polls (its table says 2 s for audio under a minute), each
poll with a 10 s timeout, at most `max_retries = 60` polls; it never reads `poll_after_seconds`
or `Retry-After`. What differs, and why: the host is a parameter (the guide hard-codes
`http://stt-service:8000`), the sleep is a parameter (3 as written, 2 for the table's short
audio), the prints are gone, and `polls` counts the polls for the report. The control flow, the
requests and their timeouts are the guide's.
"""

from __future__ import annotations

import time

import requests

GUIDE_WAIT_SECONDS = 3  # `wait_time` in the guide's code
GUIDE_SHORT_AUDIO_WAIT_SECONDS = 2  # the guide's table: "Short audio (< 1 min) | 2s"


def get_stt_result(
    audio_url: str,
    post_id: str,
    api_key: str,
    stt_host: str,
    wait_time: float = GUIDE_WAIT_SECONDS,
    polls: list[float] | None = None,
) -> str | None:
    """The guide's client: the transcription once COMPLETED, None if it failed or timed out.
    `polls` (if given) gets the moment each poll was answered."""
    headers = {"Content-Type": "application/json", "X-API-Key": api_key}

    # 1. Submit job
    try:
        resp = requests.post(
            f"{stt_host}/api/v1/transcribe",
            json={"request_id": post_id, "media_url": audio_url, "language": "vi"},
            headers=headers,
            timeout=10,  # Timeout ngắn cho submit
        )
        resp.raise_for_status()
    except requests.RequestException:
        return None

    # 2. Polling loop
    max_retries = 60  # Tối đa 60 lần
    for _attempt in range(max_retries):
        try:
            status_resp = requests.get(
                f"{stt_host}/api/v1/transcribe/{post_id}", headers=headers, timeout=10
            )
            if polls is not None:
                polls.append(time.time())
            if status_resp.status_code == 404:
                return None
            if status_resp.status_code == 200:
                data = status_resp.json()
                status = data.get("status")
                if status == "COMPLETED":
                    return str(data.get("transcription"))
                if status == "FAILED":
                    return None
                # PROCESSING - tiếp tục polling
            time.sleep(wait_time)
        except requests.RequestException:
            time.sleep(wait_time)
            continue
    return None
