"""Audio without speech, real recorded speech, and the two mixed, for the quality tests and bench.

Everything is 16 kHz mono float32 in [-1, 1] and deterministic (seeded), so a transcript that
changes between runs is the model's doing, not the test's.

Non-speech kinds (`NON_SPEECH`): digital silence, white, pink and brown noise, mains hum at 50
and 60 Hz, synthetic plucked-string music (Karplus-Strong), a sustained chord pad, clicks over a
faint floor, and a low babble of overlapped espeak-ng voices in several languages.

Real recorded human speech comes from installable packages, fetched by this module itself:
the spoken channel names of Debian's `alsa-utils` (/usr/share/sounds/alsa, in DEBIAN_PACKAGES)
and the CMU ARCTIC utterance `arctic_a0007.wav` in the PyPI sdist of `pysptk`, downloaded with
pip into the cache the first time.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stt_testing import speech
from stt_transcriber.decode import decode

RATE = 16_000
Audio = npt.NDArray[np.float32]

ALSA_DIR = Path("/usr/share/sounds/alsa")
# The spoken words of each file (a woman's voice), in the order they are joined.
ALSA_WORDS = {
    "Front_Left": "front left",
    "Front_Center": "front center",
    "Front_Right": "front right",
    "Rear_Right": "rear right",
    "Rear_Center": "rear center",
    "Rear_Left": "rear left",
    "Side_Left": "side left",
    "Side_Right": "side right",
}
PYSPTK_SDIST = "pysptk==1.0.1"
ARCTIC_MEMBER = "pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav"
ARCTIC_TEXT = "and you always want to see it in the superlative degree"

# Sentences for the babble: many voices at once, none intelligible.
_BABBLE = [
    ("en-us", "the committee will meet again next week to discuss the budget for the new year"),
    ("vi", "chúng tôi sẽ gặp lại nhau vào tuần sau để bàn về kế hoạch của năm mới"),
    ("de", "der Zug nach Berlin hat heute leider wieder eine halbe Stunde Verspätung"),
    ("fr", "nous avons acheté du pain et du fromage au marché ce matin"),
    ("es", "mañana vamos a visitar a mis abuelos en el pueblo cerca del mar"),
    ("ru", "вчера вечером мы долго гуляли по парку и разговаривали о работе"),
]


def write_wav(samples: Audio, path: Path) -> Path:
    """16-bit PCM WAV at RATE."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return path


def _rms(samples: Audio) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0


def _at_rms(samples: npt.NDArray[np.float64], rms: float) -> Audio:
    level = float(np.sqrt(np.mean(samples * samples))) or 1.0
    return (samples * (rms / level)).astype(np.float32)


def _coloured(seconds: float, seed: int, exponent: float) -> Audio:
    """Noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), at -20 dBFS RMS."""
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    freqs[0] = freqs[1]
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n)
    return _at_rms(noise, 0.1)


def silence(seconds: float, seed: int = 0) -> Audio:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def white(seconds: float, seed: int = 1) -> Audio:
    return _coloured(seconds, seed, 0.0)


def pink(seconds: float, seed: int = 2) -> Audio:
    return _coloured(seconds, seed, 1.0)


def brown(seconds: float, seed: int = 3) -> Audio:
    return _coloured(seconds, seed, 2.0)


def _hum(seconds: float, mains: float) -> Audio:
    t = np.arange(int(seconds * RATE)) / RATE
    wave_ = sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3, 5))
    return _at_rms(np.asarray(wave_, dtype=np.float64), 0.05)


def hum50(seconds: float, seed: int = 0) -> Audio:
    return _hum(seconds, 50.0)


def hum60(seconds: float, seed: int = 0) -> Audio:
    return _hum(seconds, 60.0)


def music(seconds: float, seed: int = 4) -> Audio:
    """Plucked strings (Karplus-Strong): a melody over a bass line, a note every 0.25-0.5 s."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    out = np.zeros(n + RATE * 2)
    scale = [220.0 * 2 ** (s / 12) for s in (0, 2, 3, 5, 7, 8, 10, 12, 14, 15)]
    at = 0
    while at < n:
        for freq, gain in ((float(rng.choice(scale)), 1.0), (scale[0] / 2, 0.5)):
            period = int(RATE / freq)
            buf = rng.uniform(-1, 1, period)
            note = np.empty(int(1.5 * RATE))
            for i in range(note.size):  # the string: a delay line with a lowpass in its loop
                note[i] = buf[i % period]
                buf[i % period] = 0.996 * 0.5 * (buf[i % period] + buf[(i + 1) % period])
            out[at : at + note.size] += gain * note
        at += int(RATE * float(rng.choice([0.25, 0.25, 0.5])))
    return _at_rms(out[:n], 0.1)


def chord(seconds: float, seed: int = 5) -> Audio:
    """A sustained pad: four-note chords of detuned saw-like partials, changing every 4 s."""
    t = np.arange(int(seconds * RATE)) / RATE
    roots = [220.0, 174.6, 196.0, 164.8]
    out = np.zeros(t.size)
    for k, start in enumerate(np.arange(0, seconds, 4.0)):
        sel = (t >= start) & (t < start + 4.0)
        local = t[sel] - start
        envelope = np.minimum(1.0, local / 0.8) * np.minimum(1.0, (4.0 - local) / 0.5)
        root = roots[k % len(roots)]
        for ratio in (1.0, 1.25, 1.5, 2.0):
            for detune in (0.997, 1.003):
                for h in (1, 2, 3):
                    f = root * ratio * detune * h
                    vibrato = 0.002 * np.sin(2 * np.pi * 5 * local)
                    out[sel] += envelope * np.sin(2 * np.pi * f * local * (1 + vibrato)) / h
    return _at_rms(out, 0.1)


def clicks(seconds: float, seed: int = 6) -> Audio:
    """Sharp clicks at irregular intervals over a faint noise floor (-60 dBFS)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    out = rng.standard_normal(n) * 0.001
    for at in np.cumsum(rng.uniform(0.1, 0.9, int(seconds * 3))):
        i = int(at * RATE)
        if i + 80 < n:
            out[i : i + 80] += rng.choice([-1, 1]) * 0.6 * np.exp(-np.arange(80) / 12)
    return out.astype(np.float32)


def babble(seconds: float, seed: int = 7, workdir: Path | None = None) -> Audio:
    """Six espeak-ng voices in six languages talking at once, low (-35 dBFS RMS)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    out = np.zeros(n)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for k, (voice, text) in enumerate(_BABBLE):
            wav = speech.make_speech(f"{text} {text} {text}", voice, Path(tmp) / f"b{k}.wav")
            voice_audio = decode(wav, 600).astype(np.float64)
            voice_audio = voice_audio[int(rng.uniform(0, 1) * RATE) :]
            reps = np.tile(voice_audio, n // max(1, voice_audio.size) + 1)[:n]
            out += reps / (_rms(reps.astype(np.float32)) or 1.0)
    return _at_rms(out, 10 ** (-35 / 20))


NON_SPEECH: dict[str, Callable[[float], Audio]] = {
    "silence": silence,
    "white_noise": white,
    "pink_noise": pink,
    "brown_noise": brown,
    "hum_50hz": hum50,
    "hum_60hz": hum60,
    "music": music,
    "chord_pad": chord,
    "clicks": clicks,
    "babble": babble,
}


def mix(voice: Audio, background: Audio, snr_db: float) -> Audio:
    """`voice` with `background` under it at `snr_db` (speech power over its voiced samples)."""
    voiced = voice[np.abs(voice) > 1e-3]
    bed = np.resize(background, voice.size).astype(np.float64)
    gain = _rms(voiced) / (_rms(bed.astype(np.float32)) or 1.0) / 10 ** (snr_db / 20)
    mixed = voice.astype(np.float64) + gain * bed
    peak = float(np.max(np.abs(mixed))) or 1.0
    return (mixed / max(1.0, peak / 0.99)).astype(np.float32)


def pad(audio: Audio, before: float, after: float) -> Audio:
    return np.concatenate(
        [np.zeros(int(before * RATE), np.float32), audio, np.zeros(int(after * RATE), np.float32)]
    )


@dataclass(frozen=True)
class Recording:
    name: str
    audio: Audio
    text: str


def alsa_speech(gap: float = 0.5) -> Recording:
    """The alsa-utils channel names, one after another: 'front left front center ...'."""
    parts, words = [], []
    for name, text in ALSA_WORDS.items():
        parts += [decode(ALSA_DIR / f"{name}.wav", 60), np.zeros(int(gap * RATE), np.float32)]
        words.append(text)
    return Recording("alsa", np.concatenate(parts), " ".join(words))


def arctic_speech(cache_dir: Path) -> Recording:
    """CMU ARCTIC arctic_a0007, from the pysptk sdist (pip-downloaded into the cache once)."""
    target = cache_dir / "speech" / "arctic_a0007.wav"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            subprocess.run(
                # The sdist only (its build backend is set up to read its metadata, not run).
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                 "pysptk", PYSPTK_SDIST, "-d", tmp],
                check=True, capture_output=True, timeout=300,
            )
            sdist = next(Path(tmp).glob("pysptk-*.tar.gz"))
            with tarfile.open(sdist) as tar:
                member = tar.extractfile(ARCTIC_MEMBER)
                assert member is not None, f"{ARCTIC_MEMBER} missing from {sdist.name}"
                part = target.with_suffix(".part")
                part.write_bytes(member.read())
                part.replace(target)
    return Recording("arctic", decode(target, 60), ARCTIC_TEXT)


def real_speech(cache_dir: Path) -> list[Recording]:
    """Every real recording available, as separate clips."""
    return [alsa_speech(), arctic_speech(cache_dir)]
