"""The stem store: write-once WAV stems addressed by signature and content.

Layout, below the store root::

    <engine>/<sig[:2]>/<sig>/<sha256[:16]>.wav    the stem, exactly as the engine returned it
    <engine>/<sig[:2]>/<sig>/<sha256[:16]>.json   its record and identity (the store's own index)
    <engine>/<sig[:2]>/<sig>/.claim               flock held while the signature is synthesized
    <engine>/<sig[:2]>/<sig>/.invalidated         tombstone: stems of the signature stored up to
                                                  the time it holds are misses (``invalidate``)

Paths come from signatures and hashes only, never from text. A path is never overwritten
with different bytes: a forced re-synthesis that returns new audio gets a new file and a
new record, so every partition that still points at the old record keeps verifying. The
sidecar is written right after its WAV, so a run that fails after 19 of 20 stems keeps the
19, and a wiped Dagster home or a moved store re-finds every stem without a TTS call.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from hybrid_audio_dagster.core.audio.errors import FormatMismatchError
from hybrid_audio_dagster.core.audio.trim import TrimRange, find_trim
from hybrid_audio_dagster.core.audio.wav import PcmAudio, load_wav
from hybrid_audio_dagster.core.fsutil import atomic_write_bytes, atomic_write_text, file_lock
from hybrid_audio_dagster.core.pronounce.spec import Say
from hybrid_audio_dagster.core.stems.identity import TRIM_SETTINGS, signature_of_identity, stem_identity, stem_signature
from hybrid_audio_dagster.core.tts.base import StemContract, TTSEngine, VoiceSettings


@dataclass(frozen=True)
class StemRecord:
    """What an index remembers about one stored stem."""

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
    created_at: float = 0.0  # when the file was stored (newest record of a signature wins)

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
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass(frozen=True)
class StemOutcome:
    record: StemRecord
    cache_hit: bool
    chars_sent: int  # 0 on a hit


TOMBSTONE = ".invalidated"


def engine_dirname(engine: str) -> str:
    return "".join(c if c.isalnum() or c == "-" else "_" for c in engine) or "_"


class StemStore:
    """Content-addressed stems below ``root`` (see the module docstring for the layout)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256
        self._lock = threading.Lock()

    # -- layout ------------------------------------------------------------------------------

    def signature_dir(self, engine: str, signature: str) -> Path:
        if len(signature) != 64 or not all(c in "0123456789abcdef" for c in signature):
            raise ValueError(f"not a stem signature: {signature!r}")
        return self.root / engine_dirname(engine) / signature[:2] / signature

    def relpath(self, engine: str, signature: str, sha256: str) -> str:
        return f"{engine_dirname(engine)}/{signature[:2]}/{signature}/{sha256[:16]}.wav"

    # -- reading -----------------------------------------------------------------------------

    def verify(self, record: StemRecord, *, deep: bool = True) -> bool:
        """The record's file exists (``deep``: and still hashes to the record's sha256) and
        no tombstone invalidated it."""
        path = self.root / record.path
        if self.invalidated_at(path.parent) >= record.created_at:
            return False
        try:
            st = path.stat()
        except OSError:
            return False
        if not deep:
            return st.st_size > 44
        key = (record.path, st.st_size, st.st_mtime_ns)
        sha = self._verified.get(key)
        if sha is None:
            try:
                sha = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                return False
            with self._lock:
                self._verified[key] = sha
        return sha == record.sha256

    def read(self, record: StemRecord) -> tuple[bytes, PcmAudio]:
        data = self.read_verified(record)
        return data, load_wav(data, f"stem {record.path}")

    def read_verified(self, record: StemRecord) -> bytes:
        """The stem's bytes, refused (``ValueError``) when they do not hash as recorded."""
        data = (self.root / record.path).read_bytes()
        if hashlib.sha256(data).hexdigest() != record.sha256:
            raise ValueError(
                f"stem {record.path} does not hash to its recorded sha256 {record.sha256[:12]}…: "
                "it was changed or damaged; re-materialize its stem partition"
            )
        return data

    def find(self, signature: str, engine: str) -> StemRecord | None:
        """The newest stored stem of ``signature`` whose identity and sha256 verify, if any."""
        folder = self.signature_dir(engine, signature)
        try:
            names = [n for n in os.listdir(folder) if n.endswith(".json")]
        except OSError:
            return None
        best: StemRecord | None = None
        for name in names:
            record = self._read_sidecar(folder / name, signature)
            if record is not None and (best is None or record.created_at > best.created_at) and self.verify(record):
                best = record
        return best

    def _read_sidecar(self, path: Path, signature: str) -> StemRecord | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            record = StemRecord.from_dict(data["record"])
            identity = data["identity"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable sidecar: as if absent (the stem is made again)
        if record.signature != signature or signature_of_identity(identity) != signature:
            return None
        if record.path != self.relpath(record.engine, signature, record.sha256):
            return None
        return record

    def signatures(self) -> Iterator[tuple[str, str]]:
        """Every (engine dir, signature) folder in the store."""
        if not self.root.is_dir():
            return
        for engine_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.is_symlink()):
            for shard in sorted(p for p in engine_dir.iterdir() if p.is_dir()):
                for sig_dir in sorted(p for p in shard.iterdir() if p.is_dir()):
                    yield engine_dir.name, sig_dir.name

    @staticmethod
    def invalidated_at(folder: Path) -> float:
        """The time in the folder's tombstone (-inf when there is none)."""
        try:
            return float((folder / TOMBSTONE).read_text(encoding="utf-8").strip() or "inf")
        except FileNotFoundError:
            return float("-inf")
        except (OSError, ValueError):
            return float("inf")  # an unreadable tombstone still invalidates

    def invalidate(self, engine: str, signature: str) -> int:
        """Mark every stem of ``signature`` stored until now as a miss (the next stems run
        re-synthesizes it; older files stay for the messages that still point at them).
        Returns how many stored files it covers."""
        folder = self.signature_dir(engine, signature)
        if not folder.is_dir():
            return 0
        atomic_write_text(folder / TOMBSTONE, repr(time.time()), fsync=True)
        return sum(1 for n in os.listdir(folder) if n.endswith(".wav"))

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def claim(self, engine: str, signature: str) -> Iterator[None]:
        """Exclusive right to synthesize ``signature`` (across threads and processes)."""
        with file_lock(self.signature_dir(engine, signature) / ".claim"):
            yield

    def put(self, text: str, contract: StemContract, wav: bytes, say: tuple[Say, ...] = ()) -> StemRecord:
        """Validate and trim ``wav`` (the engine's answer for ``text``), store it, record it.

        Validation happens before anything is written, so a bad TTS response never becomes
        a stem. An existing file with the same content is reused, never rewritten.
        """
        signature = stem_signature(text, contract, say)
        source = f"TTS audio for {text[:40]!r}"
        audio = load_wav(wav, source)
        expected = (contract.sample_rate, contract.channels, contract.encoding)
        if audio.format_key != expected:
            raise FormatMismatchError(source, f"engine returned {audio.format_key}, its contract says {expected}")
        trim = find_trim(audio, source, **TRIM_SETTINGS)
        sha = hashlib.sha256(wav).hexdigest()
        rel = self.relpath(contract.engine, signature, sha)
        path = self.root / rel
        if not (path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha):
            atomic_write_bytes(path, wav, fsync=True)
        record = StemRecord(
            signature=signature,
            text=text,
            engine=contract.engine,
            path=rel,
            sha256=sha,
            sample_rate=audio.sample_rate,
            channels=audio.channels,
            sample_format=audio.sample_format,
            frames=audio.frames,
            trim_start=trim.start,
            trim_end=trim.end,
            chars=len(text),
            created_at=time.time(),
        )
        sidecar = {"record": record.to_dict(), "identity": stem_identity(text, contract, say)}
        atomic_write_text(path.with_suffix(".json"), json.dumps(sidecar, ensure_ascii=False, sort_keys=True), fsync=True)
        return record

    def obtain(
        self,
        text: str,
        voice: VoiceSettings,
        engine: TTSEngine,
        *,
        contract: StemContract | None = None,
        known: StemRecord | None = None,
        force: bool = False,
        on_tts: Callable[[dict], None] | None = None,
        say: tuple[Say, ...] = (),
    ) -> StemOutcome:
        """The stem for ``text``: ``known`` or a stored one if it verifies, else a synthesis.

        The synthesis happens under the signature's claim, and the store is searched again
        once the claim is held: two runs that need the same new stem bill it once.
        ``on_tts`` (the audit) gets ``{engine, chars, latency_ms, attempts, hit, ok[, error]}``
        for each synthesis and for each hit found under the claim; never the text.
        ``say``: the pronunciations of the text (``contract`` must then be the pronounced one).
        """
        contract = contract or engine.contract(voice)
        signature = stem_signature(text, contract, say)
        if not force and known is not None and known.signature == signature and self.verify(known):
            return StemOutcome(known, cache_hit=True, chars_sent=0)
        with self.claim(contract.engine, signature):
            if not force:
                found = self.find(signature, contract.engine)
                if found is not None:
                    if on_tts is not None:
                        on_tts({"engine": contract.engine, "chars": 0, "latency_ms": 0.0, "attempts": 0, "hit": True, "ok": True})
                    return StemOutcome(found, cache_hit=True, chars_sent=0)
            started = time.perf_counter()
            try:
                wav = engine.synthesize(text, voice, say=say) if say else engine.synthesize(text, voice)
            except Exception as exc:
                if on_tts is not None:
                    on_tts(
                        {
                            "engine": contract.engine,
                            "chars": len(text),
                            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                            "attempts": getattr(exc, "attempts", 1),
                            "hit": False,
                            "ok": False,
                            "error": type(exc).__name__,
                        }
                    )
                raise
            if on_tts is not None:
                on_tts(
                    {
                        "engine": contract.engine,
                        "chars": len(text),
                        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                        "attempts": getattr(engine, "last_attempts", 1),
                        "hit": False,
                        "ok": True,
                    }
                )
            return StemOutcome(self.put(text, contract, wav, say), cache_hit=False, chars_sent=len(text))

    def remove(self, engine: str, signature: str) -> int:
        """Delete every file of ``signature`` (privacy erase); returns how many were removed."""
        folder = self.signature_dir(engine, signature)
        removed = 0
        if folder.is_dir() and not folder.is_symlink():
            for child in folder.iterdir():
                if child.is_file() or child.is_symlink():
                    child.unlink()
                    removed += child.suffix == ".wav"
            folder.rmdir()
        return removed
