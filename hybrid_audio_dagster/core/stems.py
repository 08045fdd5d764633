"""The stem store: content-addressed WAV stems keyed by their contract signature.

Pure: the cache *index* (which signature was stored with which sha256) is passed in by
the caller — in the Dagster layer it is the stems assets' materialization metadata.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

from .audio.trim import DEFAULT_THRESHOLD_DBFS, DEFAULT_ZERO_DBFS, TrimRange, find_trim
from .audio.wav import PcmAudio, load_wav
from .fsutil import atomic_write_bytes
from .tts.base import StemContract, TTSEngine, VoiceSettings, stem_signature

TRIM_SETTINGS = {"threshold_dbfs": DEFAULT_THRESHOLD_DBFS, "zero_dbfs": DEFAULT_ZERO_DBFS}


@dataclass(frozen=True)
class StemRecord:
    """What the cache index remembers about one stored stem."""

    signature: str
    text: str
    engine: str
    path: str  # relative to the store root
    sha256: str
    sample_rate: int
    channels: int
    sample_format: str
    frames: int
    trim_start: int
    trim_end: int
    chars: int  # characters of text a TTS call for it costs

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def trim(self) -> TrimRange:
        return TrimRange(self.trim_start, self.trim_end)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StemRecord:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class StemOutcome:
    record: StemRecord
    cache_hit: bool
    chars_sent: int  # 0 on a hit


class StemStore:
    """Stems live at ``<root>/<engine>/<sig[:2]>/<sig>.wav``: paths come from signatures only."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def relpath(self, contract: StemContract, signature: str) -> str:
        engine = "".join(c if c.isalnum() or c == "-" else "_" for c in contract.engine)
        return f"{engine}/{signature[:2]}/{signature}.wav"

    def is_intact(self, record: StemRecord) -> bool:
        """The indexed file is present and still hashes to what the index says."""
        path = self.root / record.path
        try:
            data = path.read_bytes()
        except OSError:
            return False
        return hashlib.sha256(data).hexdigest() == record.sha256

    def read(self, record: StemRecord) -> tuple[bytes, PcmAudio]:
        data = (self.root / record.path).read_bytes()
        return data, load_wav(data, f"stem {record.path}")

    def ensure(
        self,
        text: str,
        voice: VoiceSettings,
        engine: TTSEngine,
        *,
        indexed: StemRecord | None = None,
        force: bool = False,
    ) -> StemOutcome:
        """Return the stem for ``text``: the indexed one if still valid, else a fresh synthesis.

        A fresh WAV is validated (format, not silent, not clipped) and trimmed *before* it
        is stored, so a bad TTS response never becomes a cached stem.
        """
        contract = engine.contract(voice)
        signature = stem_signature(text, contract)
        if (
            not force
            and indexed is not None
            and indexed.signature == signature
            and self.is_intact(indexed)
        ):
            return StemOutcome(indexed, cache_hit=True, chars_sent=0)
        wav = engine.synthesize(text, voice)
        source = f"TTS audio for {text[:40]!r}"
        audio = load_wav(wav, source)
        expected = (contract.sample_rate, contract.channels, contract.encoding)
        if audio.format_key != expected:
            from .audio.errors import FormatMismatchError

            raise FormatMismatchError(source, f"engine returned {audio.format_key}, its contract says {expected}")
        trim = find_trim(audio, source, **TRIM_SETTINGS)
        rel = self.relpath(contract, signature)
        atomic_write_bytes(self.root / rel, wav, fsync=True)
        record = StemRecord(
            signature=signature,
            text=text,
            engine=contract.engine,
            path=rel,
            sha256=hashlib.sha256(wav).hexdigest(),
            sample_rate=audio.sample_rate,
            channels=audio.channels,
            sample_format=audio.sample_format,
            frames=audio.frames,
            trim_start=trim.start,
            trim_end=trim.end,
            chars=len(text),
        )
        return StemOutcome(record, cache_hit=False, chars_sent=len(text))
