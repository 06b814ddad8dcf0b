"""Cross-job batches through the whole system with the real model on real speech: jobs submitted
together go through one batched model call (the transcriber logs each batch with its job ids),
each keeps its own language and result, matching what the sequential engine gives it alone, and
a file that is not audio fails alone."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from stt_common.settings import ModelSettings
from stt_testing import processes, sounds
from stt_testing.speech import wer
from stt_transcriber.engine import WhisperEngine
from tests.e2e.conftest import Stack
from tests.e2e.seed_client import poll

pytestmark = [pytest.mark.infra, pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]
# The batched engine against the sequential one on these files: 0.0 (tests/transcriber/
# test_batch_engine.py); a little room for a clip cut at another pause.
MAX_WER_VS_SEQUENTIAL = 0.1


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    # A long wait, so the jobs submitted together surely share a batch; a lone job never waits.
    return {"STT_CROSS_JOB_BATCH": "4", "STT_BATCH_WAIT_MS": "3000"}


def batches_logged(stack: Stack) -> list[list[str]]:
    """The job ids of every batch the transcriber started, from its log."""
    found = re.findall(r"batch of \d+ jobs started: ([^\n\"]+)", stack.transcribers[0].log_text())
    return [line.split() for line in found]


async def test_jobs_submitted_together_share_a_batch_and_each_matches_its_sequential_transcript(
    stack: Stack, whisper_model_dir: Path
) -> None:
    cache = Path(os.environ.get("STT_CACHE_DIR") or REPO / ".cache")
    real = sounds.real_speech(cache)
    gap = np.zeros(8000, np.float32)
    joined = np.concatenate([real[0].audio, gap, real[1].audio])
    media_dir = stack.clips["english"].parent
    sounds.write_wav(joined, media_dir / "real-joined.wav")
    tag = uuid.uuid4().hex[:6]
    jobs = {  # request id -> (file, language)
        f"xb-en-{tag}": ("english.wav", "en"),
        f"xb-vi-{tag}": ("vietnamese.wav", "vi"),
        f"xb-real-{tag}": ("real-joined.wav", "auto"),
        f"xb-bad-{tag}": ("not-audio.mp3", "en"),
    }
    headers = {"X-API-Key": processes.API_KEY}
    async with httpx.AsyncClient(base_url=stack.api.url, headers=headers) as http:
        for rid, (name, language) in jobs.items():
            body = {
                "request_id": rid,
                "media_url": f"{stack.media.url}/{name}",
                "language": language,
            }
            assert (await http.post("/api/v1/transcribe", json=body)).status_code == 202
    bodies = await asyncio.gather(
        *(asyncio.to_thread(poll, stack.api.url, rid, processes.API_KEY, 240) for rid in jobs)
    )
    final = dict(zip(jobs, bodies, strict=True))

    bad = final.pop(f"xb-bad-{tag}")
    assert (bad["status"], bad["error_type"]) == ("FAILED", "invalid_media"), bad
    assert {b["status"] for b in final.values()} == {"COMPLETED"}, final

    shared = [batch for batch in batches_logged(stack) if set(batch) & set(final)]
    assert any(len(set(batch) & set(final)) >= 2 for batch in shared), shared
    assert sorted(rid for batch in shared for rid in batch) == sorted(final)  # each once

    model = ModelSettings(beam_size=int(stack.env["STT_BEAM_SIZE"]), cpu_threads=2)  # as served
    sequential = WhisperEngine(str(whisper_model_dir), model)
    for rid, body in final.items():
        name, language = jobs[rid]
        alone = sequential.transcribe(media_dir / name, None if language == "auto" else language)
        got = body["transcription"]
        assert wer(alone.text, got) <= MAX_WER_VS_SEQUENTIAL, (rid, got, alone.text)
        assert body["language"] == alone.language, (rid, body)
