"""The whole system as real processes: API, projector and transcriber with the real model."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from stt_testing import processes, speech
from stt_testing.media_server import MediaServer


@dataclass
class Stack:
    env: dict[str, str]
    api: processes.Api
    projector: processes.Service
    transcribers: list[processes.Service]
    media: MediaServer
    minio: Minio
    bucket: str
    clips: dict[str, Path]
    workdir: Path

    def add_transcriber(self, name: str) -> processes.Service:
        service = processes.worker("transcriber", self.env, self.workdir, name=name).start()
        self.transcribers.append(service)
        return service


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    english = speech.make_speech(speech.ENGLISH, "en-us", root / "english.wav")
    vietnamese = speech.make_speech(speech.VIETNAMESE, "vi", root / "vietnamese.wav")
    (root / "not-audio.mp3").write_bytes(b"<html>this is a web page, not audio</html>" * 50)
    return {
        "english": english,
        "english_mp3": speech.to_mp3(english, root / "english.mp3"),
        "vietnamese": vietnamese,
        "not_audio": root / "not-audio.mp3",
    }


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    """Settings a test module adds to every service of its stack (override it there)."""
    return {}


@pytest.fixture(scope="module")
def stack(
    infra: Any,
    whisper_model_dir: Path,
    clips: dict[str, Path],
    stack_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("stack")
    env = processes.service_env(
        infra.env(),
        prefix="e2e" + uuid.uuid4().hex[:6],
        STT_MODEL=str(whisper_model_dir),
        **stack_env,
    )
    client = Minio(
        infra.minio_endpoint,
        access_key=infra.minio_access_key,
        secret_key=infra.minio_secret_key,
        secure=False,
    )
    with MediaServer(clips["english"].parent) as media:
        api = processes.api(env, workdir).start()
        projector = processes.worker("projector", env, workdir).start()
        transcriber = processes.worker("transcriber", env, workdir, name="transcriber-1").start()
        stack = Stack(
            env, api, projector, [transcriber], media, client, infra.minio_bucket, clips, workdir
        )
        try:
            api.wait_ready()
            projector.wait_for_log("projector ready")
            transcriber.wait_for_log("ready", timeout=120)
            yield stack
        finally:
            for service in (*stack.transcribers, projector, api):
                service.stop()
