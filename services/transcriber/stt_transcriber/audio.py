"""Checks a downloaded file is audio of an acceptable length before the model sees it."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av

from stt_transcriber.errors import JobError, empty_media


def clock(seconds: float) -> str:
    """h:mm:ss, as in "3:05:00"."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02}:{whole % 60:02}"


def av_reason(exc: BaseException) -> str:
    """PyAV's error without the file name it appends, e.g. "Invalid data found when processing"."""
    return str(getattr(exc, "strerror", None) or exc).strip() or type(exc).__name__


def probe(path: Path, max_seconds: float) -> float:
    """The duration of `path` in seconds, read from its header (nothing is decoded).

    Raises JobError: "empty_media" for a 0-byte file, "invalid_media" when it is not audio or
    video with an audio stream, "too_long" past `max_seconds`. Returns 0.0 when the header does
    not say; decoding then bounds the length.
    """
    if path.stat().st_size == 0:
        raise empty_media()
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise invalid_media(exc) from exc
    with container:
        if not container.streams.audio:
            raise JobError(
                "Invalid format: the file is not audio or video (no audio stream)", "invalid_media"
            )
        stream = container.streams.audio[0]
        if container.duration is not None and container.duration > 0:
            duration = float(Fraction(container.duration, av.time_base))
        elif stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = 0.0
    if duration > max_seconds:
        # Rounded so the two never print equal: the length up, the limit down.
        raise JobError(
            f"Audio is {clock(math.ceil(duration))} long; the limit is {clock(max_seconds)} "
            "(STT_FETCH_MAX_AUDIO_SECONDS)",
            "too_long",
        )
    return duration


def invalid_media(exc: BaseException) -> JobError:
    return JobError(
        f"Invalid format: the file is not audio or video ({av_reason(exc)})", "invalid_media"
    )
