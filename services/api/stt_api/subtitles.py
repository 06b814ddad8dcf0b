"""A completed job's segments as SubRip (.srt), WebVTT (.vtt) or plain text: pure formatting.

* Times are rounded to the millisecond; hours grow past 99 rather than wrap. A cue never ends
  before it starts.
* Cue text is one line: newlines and runs of whitespace become one space, since a blank line would
  end the cue. `-->` (the timing arrow) never appears in text; it becomes `->`.
* WebVTT text escapes `&`, `<` and `>` (which would otherwise start entities and tags).
* Segments whose text is empty are left out; cues are numbered 1, 2, ... without gaps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from stt_common.messages import Segment

Format = Literal["json", "srt", "vtt", "txt"]
MEDIA_TYPES: Final[dict[str, str]] = {
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    text: str


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def timestamp(seconds: float, separator: str) -> str:
    """HH:MM:SS<separator>mmm, e.g. 01:02:03,004 (SRT uses ',', WebVTT '.')."""
    return _clock(_ms(seconds), separator)


def _clock(total_ms: int, separator: str) -> str:
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02}:{minutes:02}:{secs:02}{separator}{millis:03}"


def clean_text(text: str) -> str:
    """One line, no timing arrow."""
    text = _SPACES.sub(" ", text).strip()
    while "-->" in text:
        text = text.replace("-->", "->")
    return text


def cues(segments: Iterable[Segment]) -> list[Cue]:
    found = []
    for segment in segments:
        text = clean_text(segment.text)
        if text:
            start = _ms(segment.start)
            found.append(Cue(start, max(start, _ms(segment.end)), text))
    return found


def escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_srt(segments: Iterable[Segment]) -> str:
    blocks = [
        f"{n}\n{_clock(c.start_ms, ',')} --> {_clock(c.end_ms, ',')}\n{c.text}\n"
        for n, c in enumerate(cues(segments), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: Iterable[Segment]) -> str:
    blocks = ["WEBVTT\n"]
    for n, c in enumerate(cues(segments), start=1):
        timing = f"{_clock(c.start_ms, '.')} --> {_clock(c.end_ms, '.')}"
        blocks.append(f"{n}\n{timing}\n{escape_vtt(c.text)}\n")
    return "\n".join(blocks)


def to_txt(segments: Iterable[Segment]) -> str:
    lines = [c.text for c in cues(segments)]
    return "\n".join(lines) + "\n" if lines else ""


def render(
    fmt: Literal["srt", "vtt", "txt"],
    segments: list[Segment] | None,
    transcription: str | None = None,
    duration: float | None = None,
) -> str:
    """`fmt` of a completed job. Without segments, the transcription is one cue over the audio."""
    if segments is None:
        segments = [Segment(start=0.0, end=duration or 0.0, text=transcription or "")]
    if fmt == "srt":
        return to_srt(segments)
    if fmt == "vtt":
        return to_vtt(segments)
    return to_txt(segments)
