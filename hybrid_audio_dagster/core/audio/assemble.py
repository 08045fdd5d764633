"""Bit-exact assembly of stems into a message, its timeline, and independent verification.

Assembly only slices and concatenates the stems' frame bytes and inserts zero bytes for
pauses; the one exception is an optional crossfade, whose region the timeline declares.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hybrid_audio_dagster.core.audio.errors import FormatMismatchError, TimelineError, VerificationError
from hybrid_audio_dagster.core.audio.trim import TrimRange
from hybrid_audio_dagster.core.audio.wav import PcmAudio, decode_samples, encode_samples, parse_wav, wav_header
from hybrid_audio_dagster.core.fsutil import atomic_write_bytes

MAX_PAUSE_FRAMES = 10 * 384_000  # 10 s at the highest rate: far past any sane pause


@dataclass(frozen=True)
class Piece:
    """One segment's stem and the part of it to keep."""

    segment_id: str
    stem: PcmAudio
    stem_sha256: str  # identity of the stem file (sha256 of its WAV bytes)
    trim: TrimRange


@dataclass(frozen=True)
class Transition:
    """What happens after a segment: silence, or an overlap with the next stem."""

    pause_frames: int = 0
    crossfade_frames: int = 0
    boundary: str = ""  # the semantic boundary that chose the pause, for the record


@dataclass(frozen=True)
class TimelineEntry:
    segment_id: str
    stem_sha256: str
    trim_start: int  # retained frames [trim_start, trim_end) of the stem
    trim_end: int
    out_start: int  # where they sit in the message: [out_start, out_end)
    out_end: int
    pause_after: int  # zero frames inserted after this stem
    crossfade_after: int  # frames shared with the next stem (mixed region)
    boundary_after: str


_TIMELINE_SCALARS = ("sample_rate", "channels", "sample_format", "lead_frames", "tail_frames", "total_frames")


@dataclass(frozen=True)
class Timeline:
    sample_rate: int
    channels: int
    sample_format: str
    lead_frames: int
    tail_frames: int
    total_frames: int
    entries: tuple[TimelineEntry, ...]

    def to_dict(self) -> dict:
        # shallow on purpose: every field is an int/str (dataclasses.asdict deep-copies,
        # ~90 µs per message, a tenth of the message's whole budget)
        d = {f: getattr(self, f) for f in _TIMELINE_SCALARS}
        d["entries"] = [dict(e.__dict__) for e in self.entries]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping) -> Timeline:
        entries = tuple(TimelineEntry(**e) for e in d["entries"])
        return cls(**{**d, "entries": entries})

    @classmethod
    def from_json(cls, text: str) -> Timeline:
        return cls.from_dict(json.loads(text))

    def crossfade_regions(self) -> list[tuple[int, int]]:
        return [(e.out_end - e.crossfade_after, e.out_end) for e in self.entries if e.crossfade_after]


@dataclass(frozen=True)
class AssembledMessage:
    """The message as the list of byte parts of its WAV file (header first) and its timeline.

    Kept as parts so writing is one ``writev`` with no intermediate copy.
    """

    parts: tuple[bytes | memoryview, ...]
    timeline: Timeline

    @property
    def nbytes(self) -> int:
        return sum(len(p) for p in self.parts)

    def to_bytes(self) -> bytes:
        return b"".join(self.parts)

    def sha256(self) -> str:
        h = hashlib.sha256()
        for p in self.parts:
            h.update(p)
        return h.hexdigest()

    def write(self, path: str | os.PathLike, *, fsync: bool = False) -> str:
        """Write atomically; return the file's sha256 (hashed from memory, not re-read)."""
        atomic_write_bytes(path, self.parts, fsync=fsync)
        return self.sha256()


_ZEROS: dict[int, bytes] = {}


def _zeros(nbytes: int) -> bytes:
    z = _ZEROS.get(nbytes)
    if z is None:
        z = bytes(nbytes)
        if len(_ZEROS) < 256:
            _ZEROS[nbytes] = z
    return z


def crossfade(a: PcmAudio, b: PcmAudio) -> bytes:
    """Linear equal-gain crossfade of two equal-length pieces, saturating to the format's range.

    A convex combination of two in-range samples stays in range; the clip is there so
    rounding can never wrap around.
    """
    n = a.frames
    sa = a.samples.astype(np.float64)
    sb = b.samples.astype(np.float64)
    # gain of b goes (k+0.5)/n: both sides strictly inside (0, 1), symmetric around the middle
    g = ((np.arange(n, dtype=np.float64) + 0.5) / n)[:, None]
    mixed = sa * (1.0 - g) + sb * g
    if a.sample_format == "pcm_f32le":
        out = np.clip(mixed, np.minimum(sa, sb), np.maximum(sa, sb)).astype(np.float32)
    else:
        fs = a.full_scale()
        out = np.clip(np.rint(mixed), -fs, fs - 1).astype(np.int64)
    return encode_samples(out, a.sample_format)


def assemble(
    pieces: Sequence[Piece],
    transitions: Sequence[Transition],
    *,
    lead_frames: int = 0,
    tail_frames: int = 0,
) -> AssembledMessage:
    """Join ``pieces`` with ``transitions[i]`` after ``pieces[i]`` (one fewer than pieces).

    Raises FormatMismatchError naming the first stem whose rate/channels/format differs
    from the first one, and TimelineError for impossible timings.
    """
    if not pieces:
        raise TimelineError("<message>", "no segments to assemble")
    if len(transitions) != len(pieces) - 1:
        raise TimelineError("<message>", f"{len(pieces)} segments need {len(pieces) - 1} transitions, got {len(transitions)}")
    first = pieces[0].stem
    for p in pieces[1:]:
        if p.stem.format_key != first.format_key:
            raise FormatMismatchError(
                f"stem '{p.segment_id}'",
                f"{_describe(p.stem)} does not match '{pieces[0].segment_id}' ({_describe(first)}); stems are never resampled or converted",
            )
    for frames, what in ((lead_frames, "lead"), (tail_frames, "tail")):
        if not 0 <= frames <= MAX_PAUSE_FRAMES:
            raise TimelineError("<message>", f"{what} silence of {frames} frames is out of range")
    bpf = first.bytes_per_frame
    parts: list[bytes | memoryview] = [b""]  # header placeholder
    entries: list[TimelineEntry] = []
    if lead_frames:
        parts.append(_zeros(lead_frames * bpf))
    cursor = lead_frames
    fade_in = 0  # frames at the start of the current piece already emitted in a crossfade
    for i, piece in enumerate(pieces):
        tr = piece.trim
        if not 0 <= tr.start < tr.end <= piece.stem.frames:
            raise TimelineError(f"stem '{piece.segment_id}'", f"trim range {tr.start}..{tr.end} outside 0..{piece.stem.frames}")
        t = transitions[i] if i < len(transitions) else Transition()
        if t.pause_frames < 0 or t.crossfade_frames < 0 or t.pause_frames > MAX_PAUSE_FRAMES:
            raise TimelineError(
                f"transition after '{piece.segment_id}'", f"invalid pause {t.pause_frames} / crossfade {t.crossfade_frames}"
            )
        if t.pause_frames and t.crossfade_frames:
            raise TimelineError(f"transition after '{piece.segment_id}'", "a transition is either a pause or a crossfade, not both")
        n = tr.frames
        fade_out = t.crossfade_frames
        if fade_in + fade_out > n:
            raise TimelineError(
                f"stem '{piece.segment_id}'",
                f"crossfades of {fade_in} + {fade_out} frames exceed its {n} retained frames",
            )
        if fade_out:
            nxt = pieces[i + 1]
            if fade_out > nxt.trim.frames:
                raise TimelineError(
                    f"stem '{nxt.segment_id}'", f"crossfade of {fade_out} frames exceeds its {nxt.trim.frames} retained frames"
                )
        data = memoryview(piece.stem.data)
        body_from = (tr.start + fade_in) * bpf
        body_to = (tr.end - fade_out) * bpf
        parts.append(data[body_from:body_to])
        out_start = cursor - fade_in
        out_end = out_start + n
        if fade_out:
            nxt = pieces[i + 1]
            a = piece.stem.slice_frames(tr.end - fade_out, tr.end)
            b = nxt.stem.slice_frames(nxt.trim.start, nxt.trim.start + fade_out)
            parts.append(crossfade(a, b))
        elif t.pause_frames:
            parts.append(_zeros(t.pause_frames * bpf))
        entries.append(
            TimelineEntry(
                segment_id=piece.segment_id,
                stem_sha256=piece.stem_sha256,
                trim_start=tr.start,
                trim_end=tr.end,
                out_start=out_start,
                out_end=out_end,
                pause_after=t.pause_frames,
                crossfade_after=fade_out,
                boundary_after=t.boundary,
            )
        )
        cursor = out_end + t.pause_frames
        fade_in = fade_out
    if tail_frames:
        parts.append(_zeros(tail_frames * bpf))
    total = cursor + tail_frames
    data_bytes = total * bpf
    parts[0] = wav_header(first.sample_rate, first.channels, first.sample_format, data_bytes)
    if data_bytes & 1:
        parts.append(b"\x00")
    timeline = Timeline(
        sample_rate=first.sample_rate,
        channels=first.channels,
        sample_format=first.sample_format,
        lead_frames=lead_frames,
        tail_frames=tail_frames,
        total_frames=total,
        entries=tuple(entries),
    )
    return AssembledMessage(tuple(parts), timeline)


def _describe(a: PcmAudio) -> str:
    return f"{a.sample_rate} Hz, {a.channels} ch, {a.sample_format}"


def verify(
    message: bytes | PcmAudio,
    stems: Mapping[str, bytes | PcmAudio],
    timeline: Timeline,
    source: str = "<message>",
) -> None:
    """Prove that ``message`` is exactly its stems joined as ``timeline`` says.

    Independent of :func:`assemble`: it re-derives every position from the timeline,
    checks that the timeline tiles the message with no gap or overlap, that each stem's
    retained frames appear byte-for-byte, that pauses are digital silence, and that each
    crossfade sample lies between its two sources (so it cannot clip). ``stems`` maps
    sha256 → stem; given as WAV bytes, the hash is recomputed and checked too.
    Raises VerificationError naming the first discrepancy.
    """
    msg = parse_wav(message, source) if isinstance(message, (bytes, bytearray, memoryview)) else message
    fmt = (timeline.sample_rate, timeline.channels, timeline.sample_format)
    if msg.format_key != fmt:
        raise VerificationError(source, f"format {_describe(msg)} differs from the timeline's {fmt}")
    if msg.frames != timeline.total_frames:
        raise VerificationError(source, f"{msg.frames} frames, timeline says {timeline.total_frames}")
    bpf = msg.bytes_per_frame
    data = memoryview(msg.data)

    def silent(start: int, end: int, what: str) -> None:
        chunk = data[start * bpf : end * bpf]
        if chunk != _zeros(len(chunk)):
            raise VerificationError(source, f"{what} (frames {start}..{end}) is not digital silence")

    decoded: dict[str, PcmAudio] = {}

    def stem_audio(sha: str, seg: str) -> PcmAudio:
        if sha in decoded:
            return decoded[sha]
        if sha not in stems:
            raise VerificationError(source, f"stem {sha[:12]} of segment '{seg}' was not provided")
        s = stems[sha]
        if isinstance(s, (bytes, bytearray, memoryview)):
            actual = hashlib.sha256(s).hexdigest()
            if actual != sha:
                raise VerificationError(source, f"stem of segment '{seg}' hashes to {actual[:12]}, timeline says {sha[:12]}")
            s = parse_wav(bytes(s), f"stem {sha[:12]}")
        if s.format_key != fmt:
            raise VerificationError(source, f"stem of segment '{seg}' is {_describe(s)}, message is {_describe(msg)}")
        decoded[sha] = s
        return s

    if not timeline.entries:
        raise VerificationError(source, "timeline has no entries")
    silent(0, timeline.lead_frames, "lead-in")
    expected_start = timeline.lead_frames
    fade_in = 0
    for e in timeline.entries:
        where = f"segment '{e.segment_id}'"
        if e.out_start != expected_start - fade_in:
            raise VerificationError(source, f"{where} starts at frame {e.out_start}, expected {expected_start - fade_in}")
        if e.out_end - e.out_start != e.trim_end - e.trim_start or e.trim_start < 0:
            raise VerificationError(source, f"{where}: output span and trim span differ in length")
        if e.pause_after and e.crossfade_after:
            raise VerificationError(source, f"{where}: both a pause and a crossfade")
        stem = stem_audio(e.stem_sha256, e.segment_id)
        if e.trim_end > stem.frames:
            raise VerificationError(source, f"{where}: trim end {e.trim_end} past the stem's {stem.frames} frames")
        lo, hi = fade_in, (e.trim_end - e.trim_start) - e.crossfade_after
        if lo > hi:
            raise VerificationError(source, f"{where}: crossfades overlap")
        got = data[(e.out_start + lo) * bpf : (e.out_start + hi) * bpf]
        want = memoryview(stem.data)[(e.trim_start + lo) * bpf : (e.trim_start + hi) * bpf]
        if got != want:
            diff = np.flatnonzero(np.frombuffer(got, np.uint8) != np.frombuffer(want, np.uint8))
            frame = e.out_start + lo + int(diff[0]) // bpf
            raise VerificationError(source, f"{where}: frame {frame} differs from its stem {e.stem_sha256[:12]}")
        if e.crossfade_after:
            expected_start = e.out_end
        else:
            silent(e.out_end, e.out_end + e.pause_after, f"pause after {where}")
            expected_start = e.out_end + e.pause_after
        fade_in = e.crossfade_after
    # crossfade regions: each mixed sample must lie between its two sources
    for prev, nxt in zip(timeline.entries, timeline.entries[1:]):
        c = prev.crossfade_after
        if not c:
            continue
        a = stem_audio(prev.stem_sha256, prev.segment_id).samples[prev.trim_end - c : prev.trim_end]
        b = stem_audio(nxt.stem_sha256, nxt.segment_id).samples[nxt.trim_start : nxt.trim_start + c]
        start = prev.out_end - c
        m = decode_samples(bytes(data[start * bpf : prev.out_end * bpf]), msg.sample_format, msg.channels)
        lo_ab, hi_ab = np.minimum(a, b), np.maximum(a, b)
        if np.any(m < lo_ab) or np.any(m > hi_ab):
            raise VerificationError(source, f"crossfade after segment '{prev.segment_id}' leaves the range of its sources")
    last = timeline.entries[-1]
    if last.crossfade_after:
        raise VerificationError(source, "the last segment declares a crossfade into nothing")
    end = expected_start
    if end + timeline.tail_frames != timeline.total_frames:
        raise VerificationError(source, f"segments end at {end} + tail {timeline.tail_frames} ≠ {timeline.total_frames} frames")
    silent(end, timeline.total_frames, "tail")
