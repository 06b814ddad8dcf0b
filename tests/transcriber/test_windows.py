"""The cut points of long audio (`stt_transcriber.windows`), on synthetic signals, and the
STT_WINDOW_SECONDS setting that sizes them."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from stt_common.settings import ModelSettings, SettingsError, load
from stt_transcriber.windows import SPAN_MARGIN_SECONDS, speech_span, windows

RATE = 16_000


def noise(seconds: float, seed: int = 0, level: float = 0.3) -> npt.NDArray[np.float32]:
    """Continuous 'speech': white noise, with no quiet spot anywhere."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * level).astype(np.float32)


def assert_tiles(bounds: list[tuple[int, int]], size: int, limit_seconds: float) -> None:
    assert bounds[0][0] == 0 and bounds[-1][1] == size
    for (_, end), (start, _) in itertools.pairwise(bounds):
        assert end == start  # no gap, no overlap
    assert all(0 < end - start <= limit_seconds * RATE for start, end in bounds)


# With a 30 s limit the search zone is 10 s: 60 s of audio makes three even shares of 20 s, each
# cut within 5 s of its share's end (15-25 s, 35-45 s).


def test_a_pause_in_the_search_zone_is_where_the_window_ends() -> None:
    audio = noise(60)
    audio[int(17.0 * RATE) : int(17.4 * RATE)] = 0.0
    bounds = windows(audio, RATE, 30)
    assert len(bounds) == 3
    assert 17.0 * RATE <= bounds[0][1] <= 17.4 * RATE
    assert_tiles(bounds, audio.size, 30)


def test_a_quieter_stretch_wins_over_louder_speech() -> None:
    audio = noise(60)
    audio[int(22.0 * RATE) : int(22.3 * RATE)] *= 0.05  # soft, not silent
    audio[int(10.0 * RATE) : int(11.0 * RATE)] = 0.0  # silent, but outside the search zone
    bounds = windows(audio, RATE, 30)
    assert 22.0 * RATE <= bounds[0][1] <= 22.3 * RATE


def test_without_a_quiet_spot_the_cut_falls_at_the_end_of_the_zone() -> None:
    audio = noise(60, seed=3)
    bounds = windows(audio, RATE, 30)
    assert [end for _, end in bounds[:-1]] == [25 * RATE, 45 * RATE]
    assert_tiles(bounds, audio.size, 30)


def test_no_short_window_at_the_end() -> None:
    # 4 s past a multiple of the limit: shared out, not left as a 4 s window of its own (the
    # model, prompted with the words before, loops on hallucinated text in such a tail).
    audio = noise(604)
    audio[-4 * RATE :] = 0.0
    bounds = windows(audio, RATE, 300)
    lengths = [(end - start) / RATE for start, end in bounds]
    assert len(bounds) == 3 and min(lengths) > 180
    assert_tiles(bounds, audio.size, 300)


def test_silence_everywhere_still_tiles() -> None:
    audio = np.zeros(65 * RATE, dtype=np.float32)
    assert_tiles(windows(audio, RATE, 30), audio.size, 30)


@pytest.mark.parametrize("seconds", [31.0, 300.5, 601.0, 1234.56])
def test_windows_tile_the_audio_exactly(seconds: float) -> None:
    audio = noise(seconds, seed=int(seconds))
    rng = np.random.default_rng(1)
    for at in rng.uniform(0, seconds - 1, size=int(seconds // 20)):  # pauses here and there
        audio[int(at * RATE) : int((at + 0.3) * RATE)] = 0.0
    for limit in (30.0, 45.5, 300.0):
        assert_tiles(windows(audio, RATE, limit), audio.size, limit)


@pytest.mark.parametrize("seconds", [0.01, 5.0, 30.0])
def test_audio_that_fits_is_one_window(seconds: float) -> None:
    audio = noise(seconds)
    assert windows(audio, RATE, 30) == [(0, audio.size)]


def test_window_seconds_below_30_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STT_WINDOW_SECONDS", "10")
    with pytest.raises(SettingsError) as caught:
        load(ModelSettings)
    message = str(caught.value)
    assert "STT_WINDOW_SECONDS" in message and "30" in message and "\n" not in message
    monkeypatch.setenv("STT_WINDOW_SECONDS", "30")
    assert load(ModelSettings).window_seconds == 30


def test_digital_silence_at_the_ends_is_left_out() -> None:
    audio = np.concatenate([np.zeros(3 * RATE), noise(4), np.zeros(int(12.5 * RATE))])
    start, end = speech_span(audio.astype(np.float32), RATE)
    margin = int(SPAN_MARGIN_SECONDS * RATE)
    assert (start, end) == (3 * RATE - margin, 7 * RATE + margin)


def test_silence_inside_the_speech_is_kept() -> None:
    audio = np.concatenate([noise(2), np.zeros(20 * RATE, np.float32), noise(2, seed=1)])
    assert speech_span(audio, RATE) == (0, audio.size)


def test_faint_sound_is_not_silence() -> None:
    # Room noise at about -60 dBFS is sound the model may need; only digital zeros are cut.
    audio = np.concatenate([noise(2, level=1e-3), noise(2), noise(2, level=1e-3)])
    assert speech_span(audio, RATE) == (0, audio.size)


def test_all_silence_gets_no_window() -> None:
    audio = np.zeros(5 * RATE, np.float32)
    assert speech_span(audio, RATE) == (0, 0)
    assert speech_span(np.zeros(0, np.float32), RATE) == (0, 0)
    assert windows(audio[0:0], RATE, 30) == []


def test_one_loud_sample_at_the_very_end() -> None:
    audio = np.zeros(10 * RATE, np.float32)
    audio[-1] = 0.5
    margin = int(SPAN_MARGIN_SECONDS * RATE)
    assert speech_span(audio, RATE) == (audio.size - 1 - margin, audio.size)
