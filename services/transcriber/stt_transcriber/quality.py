"""What the transcript leaves out of the model's output, and why (`RemovalReason`).

Three guards that faster-whisper lacks, applied to each segment after decoding:

* a loop guard: a run of one short n-gram (1-4 words, or 1-6 characters inside a word of a
  script without spaces) repeated LOOP_MIN_REPEATS times or more is cut to one occurrence
  ("Để không bỏ lỡ lỡ lỡ lỡ lỡ l" -> "Để không bỏ lỡ"); a segment that was nothing but the loop
  is dropped;
* a segment without a single letter or digit ("...") is dropped;
* a segment the model judged speechless (`no_speech_prob` >= NO_SPEECH_SAMPLED) and could only
  decode by sampling (a temperature fallback) is dropped;
* a known hallucination phrase (hallucinations.json, per language) is dropped, but only where
  the audio under it shows no speech: the model's own `no_speech_prob` of at least
  NO_SPEECH_EVIDENCE, or a strict VAD finding under VOICED_SHARE_EVIDENCE of it voiced. A
  person saying "thanks for watching" is kept.
* a segment wholly over the padding around the voiced chunks (within the audio the model heard,
  over none of what the VAD found voiced: `voice.over_padding_only`) is dropped unless the VAD
  run again over just its audio at the lower PADDING_THRESHOLD finds at least
  PADDING_VOICED_EVIDENCE of it voiced: the model hears up to 3 s of music after speech
  (STT_VAD_PAD_MS) and could put a word there.

Invariant: every piece of text left out is reported as a `RemovedSegment` with its reason; text
is never rewritten other than by cutting a loop.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from stt_common.messages import RemovalReason, RemovedSegment

LOOP_MIN_REPEATS = 4  # occurrences in a row that make a loop ("no, no, no" stays)
LOOP_MAX_WORDS = 4  # the longest n-gram looked for
# A word-internal loop for scripts written without spaces: 1-6 characters, 5 times or more.
CHAR_LOOP = re.compile(r"(\w{1,6}?)\1{4,}")
NO_SPEECH_EVIDENCE = 0.4
# faster-whisper keeps a chunk whose no_speech_prob is over 0.6 when its avg_logprob is over -1;
# when the text also took a temperature fallback (greedy decoding failed its checks, so it was
# sampled), it is dropped: low babble of overlapped voices came back this way, at random.
NO_SPEECH_SAMPLED = 0.6
VOICED_SHARE_EVIDENCE = 0.5
# A segment over the padding only is kept when the strict VAD at PADDING_THRESHOLD (below the
# 0.35 that found the chunks) finds at least this share of it voiced. Measured: the last 3 s of
# the alsa-utils recording under music at 0 dB, which the VAD at 0.35 misses, 0.43; the last 3 s
# of a 20 s music intro 0.04, the first 3 s of a music outro 0.07, of a chord or pink noise 0.0.
# (At 0.15 the intro's last second already reads 1.0.)
PADDING_THRESHOLD = 0.25
PADDING_VOICED_EVIDENCE = 0.4
PHRASES_FILE = "hallucinations.json"

_NOT_WORD = re.compile(r"[^\w\s']|_")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFC, lower case, punctuation (except apostrophes) as spaces, single spaces."""
    text = unicodedata.normalize("NFC", text).lower()
    return _SPACES.sub(" ", _NOT_WORD.sub(" ", text)).strip()


def has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


@dataclass(frozen=True)
class Phrase:
    language: str
    text: str  # as written in the file
    match: Literal["exact", "prefix", "contains"]

    def matches(self, normalised: str) -> bool:
        own = normalise(self.text)
        if self.match == "exact":
            return normalised == own
        if self.match == "prefix":
            return normalised == own or normalised.startswith(own + " ")
        return f" {own} " in f" {normalised} "


@cache
def phrases() -> dict[str, tuple[Phrase, ...]]:
    """The phrase list, per language code (read once)."""
    raw = json.loads(Path(__file__).with_name(PHRASES_FILE).read_text("utf-8"))
    return {
        language: tuple(Phrase(language, e["text"], e["match"]) for e in entries)
        for language, entries in raw.items()
        if not language.startswith("_")
    }


def known_hallucination(text: str, language: str | None) -> Phrase | None:
    """The listed phrase of `language` that `text` matches, if any; a phrase said twice or more
    in a row ("I'm sorry, I'm sorry.") matches as once."""
    normalised = normalise(text)
    once = collapse(normalised)
    for phrase in phrases().get(language or "", ()):
        if phrase.matches(normalised) or phrase.matches(once):
            return phrase
    return None


def collapse(normalised: str) -> str:
    """Each immediate repeat of a 1-LOOP_MAX_WORDS word n-gram removed ("a b a b c" -> "a b c")."""
    words = normalised.split()
    changed = True
    while changed:
        changed = False
        for n in range(1, LOOP_MAX_WORDS + 1):
            for i in range(len(words) - 2 * n + 1):
                if words[i : i + n] == words[i + n : i + 2 * n]:
                    del words[i + n : i + 2 * n]
                    changed = True
                    break
            if changed:
                break
    return " ".join(words)


@dataclass(frozen=True)
class LoopCut:
    kept: str  # the text with each loop cut to one occurrence
    removed: str  # what was cut, "" when there was no loop
    only_loop: bool  # the text was one loop and nothing else


def _key(word: str) -> str:
    return normalise(word)


def cut_loops(text: str) -> LoopCut:
    """Each run of a 1-LOOP_MAX_WORDS word n-gram repeated LOOP_MIN_REPEATS+ times in a row
    cut to its first occurrence (a trailing partial repeat, such as "lỡ l", goes with it), and
    word-internal character loops cut likewise."""
    words = text.split()
    keys = [_key(w) for w in words]
    kept: list[str] = []
    removed: list[str] = []
    loops = outside = 0  # loops found; words kept that were not part of one
    i = 0
    while i < len(words):
        best_n, best_k = 0, 0
        for n in range(1, LOOP_MAX_WORDS + 1):
            unit = keys[i : i + n]
            if len(unit) < n or not all(unit):
                continue
            k = 1
            while keys[i + k * n : i + (k + 1) * n] == unit:
                k += 1
            if k >= LOOP_MIN_REPEATS and k * n > best_n * best_k:
                best_n, best_k = n, k
        if not best_n:
            kept.append(words[i])
            outside += 1
            i += 1
            continue
        loops += 1
        end = i + best_n * best_k
        kept += words[i : i + best_n]
        removed += words[i + best_n : end]
        # A partial repeat at the end: the unit's first words, the last of them maybe cut short.
        unit = keys[i : i + best_n]
        tail = 0
        while end + tail < len(words) and tail < best_n and keys[end + tail] == unit[tail]:
            tail += 1
        if end + tail < len(words) and tail < best_n and keys[end + tail]:
            if unit[tail].startswith(keys[end + tail]) and end + tail == len(words) - 1:
                tail += 1
        removed += words[end : end + tail]
        i = end + tail
    out = " ".join(kept)
    only_loop = loops > 0 and outside == 0
    chars_removed: list[str] = []

    def _shorten(match: re.Match[str]) -> str:
        chars_removed.append(match.group(0)[len(match.group(1)) :])
        return match.group(1)

    out = CHAR_LOOP.sub(_shorten, out)
    return LoopCut(out, " ".join(removed + chars_removed), only_loop)


@dataclass(frozen=True)
class Screened:
    text: str | None  # what the transcript keeps of the segment; None = nothing
    removed: list[RemovedSegment]


def screen(
    start: float,
    end: float,
    text: str,
    language: str | None,
    no_speech_prob: float,
    voiced_share: Callable[[], float],
    temperature: float = 0.0,
    padding_voice: Callable[[], float] | None = None,
) -> Screened:
    """Apply the guards to one segment. `voiced_share` is asked only for a listed phrase (it
    runs the VAD again over the segment's audio); `padding_voice`, given only for a segment
    wholly over the padding, is the share of it voiced at PADDING_THRESHOLD (asked likewise)."""
    removed: list[RemovedSegment] = []

    def drop(what: str, reason: RemovalReason) -> Screened:
        removed.append(RemovedSegment(start=start, end=end, text=what, reason=reason))
        return Screened(None, removed)

    loop = cut_loops(text)
    if loop.removed:
        if loop.only_loop:
            return drop(text, RemovalReason.REPETITION)
        removed.append(
            RemovedSegment(start=start, end=end, text=loop.removed, reason=RemovalReason.REPETITION)
        )
    kept = loop.kept
    if not has_words(kept):
        return drop(kept, RemovalReason.NO_WORDS) if kept else Screened(None, removed)
    if no_speech_prob >= NO_SPEECH_SAMPLED and temperature > 0:
        return drop(kept, RemovalReason.NO_SPEECH)
    if known_hallucination(kept, language) is not None and (
        no_speech_prob >= NO_SPEECH_EVIDENCE or voiced_share() < VOICED_SHARE_EVIDENCE
    ):
        return drop(kept, RemovalReason.KNOWN_HALLUCINATION)
    if padding_voice is not None and padding_voice() < PADDING_VOICED_EVIDENCE:
        return drop(kept, RemovalReason.UNVOICED)
    return Screened(kept, removed)
