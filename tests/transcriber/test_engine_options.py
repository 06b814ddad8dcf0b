"""The decoding options (prompt, hotwords, task, word timestamps, segment details, temperature):
from the submit event through the job runner to faster-whisper, and what they do to the result.
"""

from __future__ import annotations

import copy
import uuid
import wave
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from aiokafka.errors import MessageSizeTooLargeError
from faster_whisper.transcribe import Segment as WhisperSegment

from stt_common import bus
from stt_common.messages import JobStatus, ResultEvent, Segment, SubmitEvent, Task, Word
from stt_common.publisher import Publisher
from stt_common.settings import KafkaSettings
from stt_testing.media_server import MediaServer
from stt_testing.speech import ENGLISH, make_speech, normalise, wer
from stt_transcriber.decode_options import DecodeOptions
from stt_transcriber.engine import WhisperEngine
from stt_transcriber.job_runner import fit_in_a_record
from stt_transcriber.windows import window_count
from tests.transcriber.conftest import Speech
from tests.transcriber.test_job_runner import runner

# Measured with the base model, beam 5: "The meeting with Ooyenman is on Tuesday at the Kafka
# office." without a hint; "... with Nguyễn Văn An ..." with the name as prompt or as hotwords.
NAMED = "the meeting with nguyen van an is on tuesday at the kafka office"
NAME = "Nguyễn Văn An"
# "Good morning, my name is Maria and I drink coffee every morning." (see test_openai_sdk.py)
GERMAN = "guten Morgen, ich heiße Maria und ich trinke jeden Morgen Kaffee"


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_speech(NAMED, "en-us", tmp_path_factory.mktemp("named") / "named.wav")


def test_default_options_add_nothing_to_the_segments(
    whisper_engine: WhisperEngine, speech: Speech
) -> None:
    result = whisper_engine.transcribe(speech.en_wav, "en")
    assert result.segments
    for segment in result.segments:
        # The decoder's evidence is always there (issue 11); nothing that was not asked is.
        evidence = {"no_speech_prob", "avg_logprob", "compression_ratio"}
        assert set(segment.model_dump(exclude_none=True)) == {"start", "end", "text", *evidence}


def test_word_timestamps_and_segment_details(whisper_engine: WhisperEngine, speech: Speech) -> None:
    options = DecodeOptions(word_timestamps=True, segment_details=True)
    result = whisper_engine.transcribe(speech.en_wav, "en", options=options)
    assert wer(ENGLISH, result.text) < 0.3, result.text
    words = [w for s in result.segments for w in s.words or ()]
    assert wer(ENGLISH, " ".join(w.word for w in words)) < 0.3
    for segment in result.segments:
        assert segment.words and segment.tokens and segment.seek is not None
        assert segment.temperature is not None and segment.avg_logprob is not None
        assert segment.compression_ratio and segment.no_speech_prob is not None
        for word in segment.words:
            assert segment.start - 0.01 <= word.start <= word.end <= segment.end + 0.01
    times = [t for w in words for t in (w.start, w.end)]
    assert times == sorted(times) and times[-1] <= result.duration


@pytest.mark.parametrize("hint", ["prompt", "hotwords"])
def test_a_prompt_or_hotwords_spell_a_name(
    whisper_engine: WhisperEngine, named: Path, hint: str
) -> None:
    plain = whisper_engine.transcribe(named, "en")
    assert NAME not in plain.text, plain.text  # the control: the model alone misspells it
    hinted = whisper_engine.transcribe(named, "en", options=DecodeOptions(**{hint: NAME}))
    assert NAME in hinted.text, hinted.text


def test_translate_gives_english(whisper_engine: WhisperEngine, tmp_path: Path) -> None:
    german = make_speech(GERMAN, "de", tmp_path / "german.wav")
    result = whisper_engine.transcribe(german, None, options=DecodeOptions(task=Task.TRANSLATE))
    words = set(normalise(result.text).split())
    assert result.language == "de"
    assert len(words & {"good", "morning", "coffee", "drink", "drinking"}) >= 2, result.text
    assert not words & {"guten", "morgen", "ich", "kaffee"}, result.text


def test_temperatures_start_at_the_asked_one() -> None:
    assert DecodeOptions().temperatures() == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert DecodeOptions(temperature=0.5).temperatures() == [0.5, 0.7, 0.9]
    assert DecodeOptions(temperature=1.0).temperatures() == [1.0]


class _Recorder:
    """Stands in for WhisperModel: records each window's options, says one token per window."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def transcribe(self, audio: Any, **options: Any) -> tuple[list[WhisperSegment], Any]:
        self.calls.append(options)
        token = 1000 + len(self.calls)
        seg = WhisperSegment(
            id=0, seek=0, start=0.0, end=1.0, text=f" window {len(self.calls)}",
            tokens=[token], avg_logprob=-0.1, compression_ratio=1.0, no_speech_prob=0.0,
            words=None, temperature=0.0,
        )  # fmt: skip
        return [seg], SimpleNamespace(language="en", language_probability=1.0)

    def detect_next(self) -> None:  # the engine's language check (language.DetectingWhisper)
        pass

    def detected(self) -> None:
        return None


def test_the_user_prompt_opens_the_first_window_and_the_words_so_far_the_next(
    whisper_engine: WhisperEngine, tmp_path: Path
) -> None:
    path = tmp_path / "noise.wav"
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(16_000 * 50) * 1000).astype(np.int16)
    assert window_count(samples.size, 16_000, 30) == 3
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(samples.tobytes())
    engine = copy.copy(whisper_engine)
    # VAD off: the noise stands in for speech here, and every window must reach the model.
    engine.settings = whisper_engine.settings.model_copy(
        update={"window_seconds": 30, "vad_filter": False}
    )
    recorder = _Recorder()
    engine.model = recorder  # type: ignore[assignment]
    options = DecodeOptions(prompt=NAME, hotwords="Kafka", task=Task.TRANSLATE, temperature=0.4)
    result = engine.transcribe(path, "vi", options=options)
    assert [c["initial_prompt"] for c in recorder.calls] == [NAME, [1001], [1001, 1002]]
    for call in recorder.calls:
        assert (call["hotwords"], call["task"]) == ("Kafka", "translate")
        assert call["temperature"] == [0.4, 0.6, 0.8, 1.0]
    assert result.text == "window 1 window 2 window 3"


async def test_the_job_runner_hands_the_submit_options_to_the_engine(
    tmp_path: Path, named: Path
) -> None:
    job_runner = runner(tmp_path)
    with MediaServer(named.parent) as media:
        job = SubmitEvent(
            request_id="opts-1",
            media_url=f"{media.url}/{named.name}",
            prompt=NAME,
            hotwords="Kafka",
            task=Task.TRANSLATE,
            word_timestamps=True,
            segment_details=True,
            temperature=0.2,
        )

        async def report(stage: str, share: float | None) -> None:
            pass

        await job_runner.run(job, report)
    engine = job_runner.engine
    assert engine.options == [  # type: ignore[attr-defined]
        DecodeOptions(NAME, "Kafka", Task.TRANSLATE, True, True, 0.2)
    ]


def fat_result(hours: float) -> ResultEvent:
    """A COMPLETED result of `hours` of speech at 150 words a minute, with words and tokens."""
    segments = []
    for n in range(int(hours * 3600 / 4)):  # a segment every 4 s, 10 words each
        start = n * 4.0
        words = [
            Word(word=f"word{k}", start=start + k * 0.4, end=start + k * 0.4 + 0.3)
            for k in range(10)
        ]
        text = " ".join(w.word for w in words)
        segments.append(
            Segment(start=start, end=start + 4, text=text, words=words, tokens=list(range(14)))
        )
    return ResultEvent(
        request_id="fat-1",
        status=JobStatus.COMPLETED,
        transcription=" ".join(s.text for s in segments),
        segments=segments,
    )


@pytest.mark.infra
async def test_a_result_too_big_for_kafka_goes_without_words_and_tokens(infra: Any) -> None:
    fat = fat_result(2.0)
    slim = fit_in_a_record(fat)
    small = fat_result(0.1)
    assert fit_in_a_record(small) is small  # left alone
    assert slim.transcription == fat.transcription and slim.segments
    assert all(s.words is None and s.tokens is None for s in slim.segments)
    assert [s.text for s in slim.segments] == [s.text for s in fat.segments]  # type: ignore[union-attr]
    prefix = "fit" + uuid.uuid4().hex[:8]
    settings = KafkaSettings(
        bootstrap_servers=infra.kafka_bootstrap,
        topic_submit=f"{prefix}.jobs.submit",
        topic_results=f"{prefix}.jobs.results",
        topic_status=f"{prefix}.jobs.status",
        topic_dlq=f"{prefix}.jobs.dlq",
        topic_partitions=1,
    )
    await bus.ensure_topics(settings, attempts=5)
    topic = settings.topic_results
    publisher = Publisher(settings)
    await publisher.start()
    try:
        # What the worker would have met, again and again (it runs a job whose outcome it could
        # not publish once more).
        with pytest.raises(MessageSizeTooLargeError):
            await publisher.send_and_wait(topic, bus.encode(fat), key=b"fat-1")
        await publisher.send_and_wait(topic, bus.encode(slim), key=b"fat-1")
    finally:
        await publisher.stop()
