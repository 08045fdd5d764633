"""Exception hierarchy of the audio core.

Every error names the source (a file path or a label such as ``stem 'intro'``) and the
problem, so a user reading a Dagster run log knows which input to fix.
"""

from __future__ import annotations


class AudioError(Exception):
    """Base class of every error raised by the audio core."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class InvalidWavError(AudioError):
    """The bytes are not a well-formed RIFF/WAVE file (bad magic, missing chunk, ...)."""


class UnsupportedFormatError(AudioError):
    """A well-formed WAV in an encoding the core refuses (e.g. 8-bit, mu-law, ADPCM)."""


class TruncatedWavError(AudioError):
    """The data chunk declares more bytes than the file holds."""


class EmptyAudioError(AudioError):
    """The WAV holds no sample frames (or nothing is left after trimming)."""


class SilentAudioError(AudioError):
    """Every sample is below the silence threshold."""


class ClippedAudioError(AudioError):
    """The audio holds runs of full-scale samples: it was clipped before it reached us."""


class FormatMismatchError(AudioError):
    """Stems to be joined differ in sample rate, channel count or sample format."""


class TimelineError(AudioError):
    """A timeline is inconsistent with the audio it describes."""


class VerificationError(AudioError):
    """An assembled message is not a bit-exact join of its stems."""
