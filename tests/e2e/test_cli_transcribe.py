"""`stt transcribe` as a user runs it: a subprocess against the whole stack with the real model."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import srt

from stt_client._core import default_request_id
from stt_testing import processes, speech
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.infra, pytest.mark.e2e]
MAX_WER_EN = 0.35


def stt_transcribe(
    *args: str, cwd: Path, timeout: float = 180, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STT_")}
    return subprocess.run(
        [*processes.STT, "transcribe", *args],
        env=clean | env,
        cwd=cwd,  # not the repo: a developer's .env must not be read
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_local_file_is_uploaded_transcribed_and_printed_as_srt(
    stack: Stack, tmp_path: Path
) -> None:
    run = stt_transcribe(
        str(stack.clips["english"]),
        "--wait",
        "--format",
        "srt",
        "--language",
        "en",
        cwd=tmp_path,
        STT_API_URL=stack.api.url,
        STT_API_KEY=processes.API_KEY,
    )
    assert run.returncode == 0, run.stderr
    cues = list(srt.parse(run.stdout))
    assert cues and cues[0].start.total_seconds() < 2
    text = " ".join(cue.content for cue in cues)
    assert speech.wer(speech.ENGLISH, text) <= MAX_WER_EN, text
    assert "uploading" in run.stderr
    final = run.stderr.split()[-3:]  # the bar's last drawing (text mode reads each \r as \n)
    assert final == ["done", "100%", f"[{'#' * 30}]"], run.stderr


def test_a_url_is_submitted_then_waited_for_with_the_key_from_dotenv(
    stack: Stack, tmp_path: Path
) -> None:
    url = f"{stack.media.url}/english.wav?{uuid.uuid4().hex}"
    # Like `make up`'s .env: the first of STT_API_KEYS is used.
    (tmp_path / ".env").write_text(
        f"STT_API_URL={stack.api.url}\nSTT_API_KEYS={processes.API_KEY},another-key\n"
    )
    submitted = stt_transcribe(url, "--language", "en", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    rid = default_request_id(url, "en")
    assert submitted.stdout.strip() == rid
    assert f"curl {stack.api.url}/api/v1/transcribe/{rid}" in submitted.stderr
    waited = stt_transcribe(url, "--language", "en", "--wait", "--format", "json", cwd=tmp_path)
    assert waited.returncode == 0, waited.stderr
    assert f'"request_id": "{rid}"' in waited.stdout and '"status": "COMPLETED"' in waited.stdout
    assert stack.media.hits[url.removeprefix(stack.media.url)] == 1  # one job, not two


def test_a_failed_job_exits_1_with_its_error(stack: Stack, tmp_path: Path) -> None:
    url = f"{stack.media.url}/forbidden/english.wav?{uuid.uuid4().hex}"
    run = stt_transcribe(
        url, "--wait", cwd=tmp_path, STT_API_URL=stack.api.url, STT_API_KEY=processes.API_KEY
    )
    assert run.returncode == 1
    assert "FAILED: Failed to download audio file: 403 Forbidden" in run.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = stt_transcribe(str(tmp_path / "nope.wav"), cwd=tmp_path)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad_format = stt_transcribe("http://h/a.mp3", "--format", "docx", cwd=tmp_path)
    assert bad_format.returncode == 2


def test_a_passed_deadline_exits_3(stack: Stack, tmp_path: Path) -> None:
    url = f"{stack.media.url}/english.wav?{uuid.uuid4().hex}"
    run = stt_transcribe(
        url,
        "--wait",
        "--deadline",
        "0.5",
        "--language",
        "en",
        cwd=tmp_path,
        STT_API_URL=stack.api.url,
        STT_API_KEY=processes.API_KEY,
    )
    assert run.returncode == 3, run.stderr
    assert "still PROCESSING" in run.stderr


# "Good morning, my name is Maria and I drink coffee every morning." (see test_openai_sdk.py)
GERMAN = "guten Morgen, ich heiße Maria und ich trinke jeden Morgen Kaffee"


def test_translate_with_a_prompt_and_word_timestamps(stack: Stack, tmp_path: Path) -> None:
    clip = speech.make_speech(GERMAN, "de", tmp_path / "german.wav")
    run = stt_transcribe(
        str(clip),
        "--wait",
        "--format",
        "json",
        "--language",
        "de",
        "--translate",
        "--word-timestamps",
        "--prompt",
        "Maria.",
        "--hotwords",
        "coffee",
        cwd=tmp_path,
        STT_API_URL=stack.api.url,
        STT_API_KEY=processes.API_KEY,
    )
    assert run.returncode == 0, run.stderr
    job = json.loads(run.stdout)
    words = set(speech.normalise(job["transcription"]).split())
    assert len(words & {"good", "morning", "coffee", "drink", "drinking"}) >= 2, job
    assert not words & {"guten", "morgen", "ich", "kaffee"}, job
    said = [w["word"] for s in job["segments"] for w in s["words"]]
    assert speech.normalise(" ".join(said)) == speech.normalise(job["transcription"])
