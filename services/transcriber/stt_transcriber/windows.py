"""Where to cut long audio into windows the model is fed one at a time.

faster-whisper computes the log-mel features of all the audio it is given at once, so the engine
feeds it windows of bounded length instead of the whole file. The audio is shared out into
windows of about equal length, never a short one at the end: a few seconds of trailing silence
given to the model alone, with the previous window's words as its prompt, made it loop on
hallucinated text for longer than a whole window takes. Each boundary is placed in the quietest
short frame (lowest RMS over 100 ms, its neighbours included) within a few seconds of its even
share, so a word is rarely cut in two; where nothing there is markedly quieter than the rest
(continuous speech or noise), it falls at the end of that zone.

Digital silence at either end of the file (encoder padding, a silent intro or outro) is not given
to the model at all (`speech_span`): on a run of zeros Whisper can loop on invented text up to its
token limit. 26 s of trailing zeros made a 10-minute file take 50-56 s instead of 38-40 s, and
12 s of them took a window's decoder ~75 MiB more than any other window of a 30-minute file.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

SEARCH_SECONDS = 10.0
FRAME_SECONDS = 0.1
# A frame is a pause when its RMS is at most this share of the search zone's median RMS ...
QUIET_SHARE = 0.5
# ... or below this level (about -80 dBFS), which also covers a zone of digital silence.
SILENCE_RMS = 1e-4
# Kept around the speech when digital silence is trimmed: the model hears a word end as it does
# in any clip, and an onset too faint for the threshold is not cut off.
SPAN_MARGIN_SECONDS = 0.5
SCAN_SECONDS = 1.0  # the ends are scanned a block at a time: no temporary the size of the file


def speech_span(audio: npt.NDArray[np.float32], sample_rate: int) -> tuple[int, int]:
    """(start, end) sample indices of the audio between the leading and trailing digital silence
    (every sample under SILENCE_RMS in size), widened by SPAN_MARGIN_SECONDS on each side;
    (0, 0), an empty span, when it is silent throughout: such audio gets no window at all, so
    the model never runs on it (it would only invent text, for as long as the file lasts)."""
    block = max(1, int(SCAN_SECONDS * sample_rate))
    margin = int(SPAN_MARGIN_SECONDS * sample_rate)
    first = last = None
    for start in range(0, audio.size, block):
        loud = np.flatnonzero(np.abs(audio[start : start + block]) > SILENCE_RMS)
        if loud.size:
            first = start + int(loud[0])
            break
    if first is None:
        return 0, 0
    for end in range(audio.size, first, -block):
        loud = np.flatnonzero(np.abs(audio[max(first, end - block) : end]) > SILENCE_RMS)
        if loud.size:
            last = max(first, end - block) + int(loud[-1])
            break
    assert last is not None  # the sample at `first` is loud
    return max(0, first - margin), min(audio.size, last + 1 + margin)


def windows(
    audio: npt.NDArray[np.float32],
    sample_rate: int,
    window_seconds: float,
    search_seconds: float = SEARCH_SECONDS,
    frame_seconds: float = FRAME_SECONDS,
) -> list[tuple[int, int]]:
    """(start, end) sample indices of windows that tile `audio` exactly, each at most
    `window_seconds` long; one window when the audio fits in one, none when it is empty."""
    if audio.size == 0:
        return []
    count, search = _layout(audio.size, sample_rate, window_seconds, search_seconds)
    if count == 1:
        return [(0, audio.size)]
    frame = max(1, int(frame_seconds * sample_rate))
    share = audio.size / count
    bounds: list[tuple[int, int]] = []
    start = 0
    for k in range(1, count):
        zone_end = round(k * share) + search // 2
        zone_start = max(start + frame, zone_end - search)
        end = zone_start + quiet_cut(audio[zone_start:zone_end], frame)
        bounds.append((start, end))
        start = end
    bounds.append((start, audio.size))
    return bounds


def window_count(
    samples: int, sample_rate: int, window_seconds: float, search_seconds: float = SEARCH_SECONDS
) -> int:
    """How many windows `windows` cuts `samples` samples of audio into."""
    return _layout(samples, sample_rate, window_seconds, search_seconds)[0]


def _layout(
    samples: int, sample_rate: int, window_seconds: float, search_seconds: float
) -> tuple[int, int]:
    """(how many windows, the search zone in samples) for `samples` samples of audio."""
    limit = int(window_seconds * sample_rate)
    if limit < 1:
        raise ValueError(f"window_seconds must give at least one sample, not {window_seconds}")
    if samples <= limit:
        return 1, 0
    search = min(int(search_seconds * sample_rate), limit // 2)
    # Even shares of at most limit - search, and each cut within search / 2 of its share's
    # end, so that no window is longer than the limit.
    return math.ceil(samples / (limit - search)), search


def quiet_cut(zone: npt.NDArray[np.float32], frame: int) -> int:
    """The index in `zone` to cut at: the centre of its quietest frame, or `zone.size` (its end)
    when no frame is a pause. Frames are counted back from the end; a partial one is ignored."""
    count = zone.size // frame
    if count < 2:
        return zone.size
    frames = zone[zone.size - count * frame :].reshape(count, frame).astype(np.float64)
    power = np.mean(frames * frames, axis=1)
    # Each frame is judged with its neighbours (300 ms), so a pause between words beats the
    # silent closure of a stop consonant inside one (synthetic speech has both at zero).
    padded = np.concatenate(([power[0]], power, [power[-1]]))
    rms = np.sqrt((padded[:-2] + padded[1:-1] + padded[2:]) / 3)
    # Of equally quiet frames the latest wins, so windows stay as long as they may be.
    best = count - 1 - int(np.argmin(rms[::-1]))
    if rms[best] > max(QUIET_SHARE * float(np.median(rms)), SILENCE_RMS):
        return zone.size
    return zone.size - (count - best) * frame + frame // 2
