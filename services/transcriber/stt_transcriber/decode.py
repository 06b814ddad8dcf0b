"""Decodes media to the model's input (16 kHz mono float32) with a hard bound on samples.

faster-whisper's own `decode_audio` keeps decoding until the stream ends, so a file whose header
claims a few seconds but holds hours (or a decompression bomb) would fill memory. Here decoding
stops as soon as the limit is passed, and a file that decodes to far less than its header
declares is reported as truncated instead of being transcribed in part.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler

from stt_transcriber.audio import check_sample_rate, clock, invalid_media, open_media
from stt_transcriber.errors import JobError, empty_media

SAMPLE_RATE = 16_000
# A header may estimate its length (e.g. from the bitrate); only a large shortfall is truncation.
TRUNCATED_SHARE = 0.5
TRUNCATED_MIN_SECONDS = 1.0
Samples = npt.NDArray[np.float32]


def declared_seconds(container: av.container.InputContainer) -> float:
    """The length the container's header states, 0.0 when it states none."""
    if container.duration is not None and container.duration > 0:
        return float(Fraction(container.duration, av.time_base))
    stream = container.streams.audio[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return 0.0


def _frames(container: av.container.InputContainer) -> Iterator[AudioFrame]:
    decoded = container.decode(audio=0)
    while True:
        try:
            frame = next(decoded)
        except StopIteration:
            return
        except av.InvalidDataError:
            continue  # a damaged packet is skipped, as faster-whisper does
        frame.pts = None  # the resampler need not check timestamps (damaged files break them)
        check_sample_rate(frame.sample_rate)  # a stream may change rate mid-way
        yield frame


def too_long(max_seconds: float) -> JobError:
    return JobError(
        f"Audio is longer than the limit of {clock(max_seconds)} "
        "(STT_FETCH_MAX_AUDIO_SECONDS); decoding stopped there",
        "too_long",
    )


class _Samples:
    """Float32 samples written in place as frames arrive, into a buffer sized from the header's
    length: no int16 copy beside the float32 one, so decoding peaks at the samples themselves
    (plus a little), however long the file. A header that understates grows the buffer by half;
    the slack is given back at the end by `resize`, which reallocates in place."""

    def __init__(self, declared_seconds: float, limit: int) -> None:
        expected = int(declared_seconds * 1.01 * SAMPLE_RATE) + SAMPLE_RATE
        self.buffer: Samples = np.empty(min(max(expected, 60 * SAMPLE_RATE), limit + 1), np.float32)
        self.size = 0

    def add(self, pcm: npt.NDArray[np.int16]) -> None:
        end = self.size + pcm.size
        if end > self.buffer.size:
            self.buffer.resize(max(end, self.buffer.size * 3 // 2), refcheck=False)
        np.multiply(pcm, 1.0 / 32768.0, out=self.buffer[self.size : end], casting="unsafe")
        self.size = end

    def result(self) -> Samples:
        self.buffer.resize(self.size, refcheck=False)
        return self.buffer


def decode(path: Path, max_seconds: float) -> Samples:
    """Mono 16 kHz float32 samples of the first audio stream, at most `max_seconds` of them.

    Raises JobError: "invalid_media" (not audio, nothing decodable, truncated), "empty_media",
    "too_long" (decoding passed `max_seconds`, whatever the header said).
    """
    if path.stat().st_size == 0:
        raise empty_media()
    limit = int(max_seconds * SAMPLE_RATE)
    declared = 0.0
    samples: _Samples | None = None
    resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    try:
        with open_media(path) as container:
            if not container.streams.audio:
                raise JobError(
                    "Invalid format: the file is not audio or video (no audio stream)",
                    "invalid_media",
                )
            check_sample_rate(container.streams.audio[0].sample_rate)
            declared = declared_seconds(container)
            samples = _Samples(declared, limit)
            for frame in itertools.chain(_frames(container), [None]):  # None: flush
                for out in resampler.resample(frame):
                    pcm = out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                    if samples.size + pcm.size > limit:
                        raise too_long(max_seconds)
                    samples.add(pcm)
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise invalid_media(exc) from exc
    finally:
        # PyAV's resampler holds native buffers that only a collection frees (faster-whisper #390).
        del resampler
        gc.collect()
    assert samples is not None
    _check(samples.size, declared)
    return samples.result()


def _check(total: int, declared: float) -> None:
    if total == 0:
        raise JobError("Invalid format: no audio could be decoded from the file", "invalid_media")
    seconds = total / SAMPLE_RATE
    if seconds < declared * TRUNCATED_SHARE and declared - seconds >= TRUNCATED_MIN_SECONDS:
        raise JobError(
            f"Invalid format: the file is truncated or damaged (its header says {clock(declared)}, "
            f"only {clock(seconds)} could be decoded)",
            "invalid_media",
        )
