"""Trimming the TTS engine's own leading and trailing silence.

The cut is placed where the waveform is (near) zero, so dropping the samples before it
adds no click; every retained sample is untouched (trimming only picks a frame range).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybrid_audio_dagster.core.audio.errors import SilentAudioError
from hybrid_audio_dagster.core.audio.wav import PcmAudio, dbfs_to_amplitude

DEFAULT_THRESHOLD_DBFS = -50.0
DEFAULT_ZERO_DBFS = -70.0


@dataclass(frozen=True)
class TrimRange:
    """Frames ``[start, end)`` of a stem that are kept."""

    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start


def find_trim(
    audio: PcmAudio,
    source: str = "<audio>",
    *,
    threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS,
    zero_dbfs: float = DEFAULT_ZERO_DBFS,
) -> TrimRange:
    """Locate the speech in ``audio``: the first/last frame louder than ``threshold_dbfs``.

    From there the cut moves outwards to the nearest frame whose level (max over channels)
    is at or below ``zero_dbfs``, which is kept as the first/last retained frame. If no
    such frame exists the audio is not cut on that side (cutting mid-waveform would click).
    """
    if zero_dbfs > threshold_dbfs:
        raise ValueError(f"zero_dbfs ({zero_dbfs}) must not exceed threshold_dbfs ({threshold_dbfs})")
    level = np.abs(audio.samples.astype(np.float64)).max(axis=1)
    loud = np.flatnonzero(level > dbfs_to_amplitude(threshold_dbfs, audio.sample_format))
    if loud.size == 0:
        raise SilentAudioError(source, f"nothing above the trim threshold {threshold_dbfs} dBFS")
    first, last = int(loud[0]), int(loud[-1])
    quiet = level <= dbfs_to_amplitude(zero_dbfs, audio.sample_format)
    before = np.flatnonzero(quiet[:first])
    after = np.flatnonzero(quiet[last + 1 :])
    start = int(before[-1]) if before.size else 0
    end = last + 1 + int(after[0]) + 1 if after.size else audio.frames
    return TrimRange(start, end)
