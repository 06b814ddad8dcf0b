"""Checks a downloaded file is audio of an acceptable length before the model sees it."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av

from stt_transcriber.errors import JobError, empty_media

# Below this no speech survives (telephone audio is 8 kHz), and a tiny file at a rate of a few
# hertz would be resampled into hours of 16 kHz samples: a 28 KB WAV at 1 Hz is 3.9 hours.
MIN_SAMPLE_RATE = 8000


def check_sample_rate(rate: int | None) -> None:
    """Raises JobError("invalid_media") for a sample rate under MIN_SAMPLE_RATE."""
    if rate and rate < MIN_SAMPLE_RATE:  # 0: the header does not say; the frames will
        raise JobError(
            f"Invalid format: the audio's sample rate is {rate} Hz; at least "
            f"{MIN_SAMPLE_RATE} Hz is needed",
            "invalid_media",
        )


# The demuxers media may be opened with: audio and audio/video containers only. Without this
# list FFmpeg picks any of its ~350 demuxers by probing the bytes, among them playlist formats
# (concat, hls, ...) that open further files: a self-including ffconcat file opened itself until
# the worker ran out of file descriptors. FFmpeg matches each name against a demuxer's aliases
# ("mp4" is "mov,mp4,m4a,3gp,3g2,mj2").
DEMUXERS = (
    "wav,w64,mp3,flac,ogg,mp4,matroska,aac,ac3,eac3,amr,amrnb,amrwb,aiff,caf,au,avi,asf,"
    "mpegts,mpeg,flv,wv,ape,tta,mpc,mpc8,dts,dtshd,truehd,mlp,tak,shn"
)
# ... and read only from the local file the worker downloaded: no network, no pipes.
PROTOCOLS = "file"
OPEN_OPTIONS = {"format_whitelist": DEMUXERS, "protocol_whitelist": PROTOCOLS}


def open_media(path: Path) -> av.container.InputContainer:
    """`path` opened with the demuxer and protocol allow-lists; raises what av.open raises,
    and JobError("invalid_media") for a format off the list (refused before its header is
    read, so a playlist never opens anything)."""
    try:
        return av.open(str(path), metadata_errors="ignore", options=OPEN_OPTIONS)
    except av.ArgumentError as exc:  # FFmpeg's EINVAL: what the whitelist check answers
        raise JobError(
            "Invalid format: the file is not in an audio or video format this service reads",
            "invalid_media",
        ) from exc


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
        container = open_media(path)
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise invalid_media(exc) from exc
    with container:
        if not container.streams.audio:
            raise JobError(
                "Invalid format: the file is not audio or video (no audio stream)", "invalid_media"
            )
        stream = container.streams.audio[0]
        check_sample_rate(stream.sample_rate)
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
