"""How long this worker takes for a job: engine seconds ≈ fixed + per_second × audio seconds.

Learned online from the worker's own jobs (same model, hardware and load) by least squares,
weighted towards recent jobs. Two terms, because a short clip is mostly fixed cost: a real-time
factor learned from short clips alone overestimates a long file by seconds. Until jobs of
clearly different lengths have been seen, the estimate is proportional to the length.
"""

from __future__ import annotations

DECAY = 0.9  # weight left to a job after each newer one
SPREAD = 0.1  # lengths must vary by this share of their mean to tell the two costs apart


class SpeedModel:
    def __init__(self) -> None:
        self._w = self._d = self._t = self._dd = self._dt = 0.0  # weighted sums

    def observe(self, audio_seconds: float, engine_seconds: float) -> None:
        if audio_seconds <= 0 or engine_seconds <= 0:
            return
        d, t = audio_seconds, engine_seconds
        self._w = self._w * DECAY + 1.0
        self._d = self._d * DECAY + d
        self._t = self._t * DECAY + t
        self._dd = self._dd * DECAY + d * d
        self._dt = self._dt * DECAY + d * t

    def predict(self, audio_seconds: float) -> float | None:
        """Expected engine seconds for a file this long; None before the first job."""
        if self._w == 0 or audio_seconds <= 0:
            return None
        mean_d, mean_t = self._d / self._w, self._t / self._w
        variance = self._dd / self._w - mean_d * mean_d
        covariance = self._dt / self._w - mean_d * mean_t
        if variance > (SPREAD * mean_d) ** 2 and covariance > 0:
            per_second = covariance / variance
            fixed = max(0.0, mean_t - per_second * mean_d)
            return fixed + per_second * audio_seconds
        return self._t / self._d * audio_seconds
