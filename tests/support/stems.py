"""Stem records for tests that plan messages without audio."""

import hashlib

from hybrid_audio_dagster.core.stems.store import StemRecord


def fake_record(text: str, rate: int = 22050) -> StemRecord:
    """A record of a stem that was never made: its size follows from the text, its sha from the text."""
    sha = hashlib.sha256(text.encode()).hexdigest()
    n = 1000 + len(text) * 37
    return StemRecord(sha, text, "test", f"t/{sha}.wav", sha, rate, 1, "pcm_s16le", n, 7, n - 11, len(text))
