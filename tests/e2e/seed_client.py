"""The seed's own client loop (Python/requests example), with httpx and shorter waits."""

from __future__ import annotations

import time
from typing import Any

import httpx


def get_stt_result(
    stt_host: str,
    audio_url: str,
    post_id: str,
    api_key: str,
    language: str = "vi",
    max_retries: int = 120,
    wait_time: float = 1.0,
) -> dict[str, Any]:
    """Submit, then poll until COMPLETED or FAILED; returns the last body seen."""
    headers = {"Content-Type": "application/json", "X-API-Key": api_key}
    resp = httpx.post(
        f"{stt_host}/api/v1/transcribe",
        json={"request_id": post_id, "media_url": audio_url, "language": language},
        headers=headers,
        timeout=10,
    )
    resp.raise_for_status()
    return poll(stt_host, post_id, api_key, max_retries, wait_time)


def poll(
    stt_host: str, post_id: str, api_key: str, max_retries: int = 120, wait_time: float = 1.0
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for _ in range(max_retries):
        status_resp = httpx.get(
            f"{stt_host}/api/v1/transcribe/{post_id}", headers={"X-API-Key": api_key}, timeout=10
        )
        if status_resp.status_code == 404:
            return {"status": "NOT_FOUND"}
        if status_resp.status_code == 200:
            data = status_resp.json()
            if data.get("status") in ("COMPLETED", "FAILED"):
                return data
        time.sleep(wait_time)
    raise TimeoutError(f"{post_id} still {data.get('status')} after {max_retries} polls: {data}")
