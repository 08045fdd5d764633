"""Scenario 1: the audio core against the obvious alternatives, on the same messages.

Every approach builds the same messages (same stems, trims, pauses, lead and tail) from
stems already in memory and writes one WAV file per message into a scratch folder that is
emptied between repetitions (untimed), so live output stays at one batch. Approaches run
interleaved, in a rotating order, and each comparison is the median of the ratios measured
within the same repetition.

* ``core``: what the messages asset does per message: ``assemble`` + ``AssembledMessage.write``
  (atomic temp file + rename, sha256 of the parts from memory).
* ``numpy_soundfile`` (baseline a): ``np.concatenate`` of the int16 arrays + ``soundfile.write``.
  libsndfile fsyncs every file on close: free on tmpfs, costly on a disk.
* ``numpy_write`` (diagnostic): the same concatenation, 44-byte header + plain ``write``
  (no fsync, no rename, no hash): the floor a Python loop can reach.
* ``core_nohash`` (diagnostic): ``assemble`` + the atomic write without the sha256.
* ``pydub`` (baseline b): ``AudioSegment`` slices ``+`` silence, ``export(format="wav")``.
* ``sox`` / ``ffmpeg`` (baseline c): one process per message, if the binary is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybrid_audio_dagster.core.audio.assemble import (
    Piece,
    Transition,
    assemble,
)
from hybrid_audio_dagster.core.audio.timing import ms_to_frames
from hybrid_audio_dagster.core.audio.trim import find_trim
from hybrid_audio_dagster.core.audio.wav import PcmAudio, wav_header
from hybrid_audio_dagster.core.fsutil import atomic_write_bytes
from hybrid_audio_dagster.core.templates import SegmentKind, load_template

from .common import PROJECT_ROOT, Stopwatch, clear_dir, median, spread

RATE = 44_100
TEMPLATE = PROJECT_ROOT / "templates" / "followup-en.json"
# seconds of speech per segment of followup-en, chosen so a message lasts ~12 s
SPEECH_S = {"greeting": 0.55, "intro": 0.7, "lead-in": 1.55, "brand": 1.1, "offer": 3.5, "close": 2.75}
EDGE_SILENCE_S = 0.04  # the TTS engine's own leading/trailing silence, trimmed off


# --------------------------------------------------------------------------- workload


def _tone(seconds: float, seed: int) -> np.ndarray:
    """Speech-like int16 audio: two partials and noise, faded, with digital silence at the edges."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 110 + seed % 180
    x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 2.03 * f0 * t) + 0.03 * rng.standard_normal(n)
    fade = int(0.01 * RATE)
    ramp = np.linspace(0, 1, fade)
    x[:fade] *= ramp
    x[-fade:] *= ramp[::-1]
    edge = np.zeros(int(EDGE_SILENCE_S * RATE))
    return np.round(np.concatenate([edge, x, edge]) * 32767).astype("<i2")


@dataclass(frozen=True)
class Stem:
    sha256: str
    audio: PcmAudio
    array: np.ndarray  # int16, for the numpy baselines
    trim_start: int
    trim_end: int


@dataclass(frozen=True)
class MessageSpec:
    """One message: which stems, in order, and the silences around them (all in frames)."""

    stems: tuple[Stem, ...]
    segment_ids: tuple[str, ...]
    pauses: tuple[int, ...]  # after each stem but the last
    lead: int
    tail: int
    rate: int = RATE

    @property
    def frames(self) -> int:
        return self.lead + self.tail + sum(self.pauses) + sum(s.trim_end - s.trim_start for s in self.stems)

    @property
    def nbytes(self) -> int:
        return 44 + 2 * self.frames


def _stem(seconds: float, seed: int) -> Stem:
    arr = _tone(seconds, seed)
    audio = PcmAudio(RATE, 1, "pcm_s16le", arr.tobytes())
    tr = find_trim(audio)
    return Stem(hashlib.sha256(audio.data).hexdigest(), audio, arr, tr.start, tr.end)


def make_workload(n_messages: int, *, n_names: int = 64, n_developers: int = 20) -> list[MessageSpec]:
    """``n_messages`` distinct-ish ~12 s messages of the followup-en shape at 44.1 kHz."""
    tpl = load_template(TEMPLATE)
    names = [_stem(SPEECH_S["greeting"] * (0.8 + 0.4 * i / n_names), 1000 + i) for i in range(n_names)]
    devs = [_stem(SPEECH_S["brand"] * (0.8 + 0.4 * i / n_developers), 2000 + i) for i in range(n_developers)]
    script = {s.id: _stem(SPEECH_S[s.id], 3000 + k) for k, s in enumerate(tpl.segments) if s.kind is SegmentKind.SCRIPT}
    texts = [s.render(name="Name", developer="Developer") for s in tpl.segments]
    pauses = []
    for i, text in enumerate(texts[:-1]):
        _, pause_ms, crossfade_ms = tpl.transition_after(i, text)
        assert crossfade_ms == 0
        pauses.append(ms_to_frames(pause_ms, RATE))
    lead, tail = ms_to_frames(tpl.timing.lead_ms, RATE), ms_to_frames(tpl.timing.tail_ms, RATE)
    specs = []
    for m in range(n_messages):
        name, dev = names[m % n_names], devs[(m // n_names) % n_developers]
        stems = tuple(
            name if s.kind is SegmentKind.NAME else dev if s.kind is SegmentKind.DEVELOPER else script[s.id]
            for s in tpl.segments
        )
        specs.append(MessageSpec(stems, tuple(s.id for s in tpl.segments), tuple(pauses), lead, tail))
    return specs


# --------------------------------------------------------------------------- approaches
# Each approach is a factory: setup(specs, workdir) -> write(spec, path) callable.

_ZERO_ARRAYS: dict[int, np.ndarray] = {}


def _zeros_i16(n: int) -> np.ndarray:
    z = _ZERO_ARRAYS.get(n)
    if z is None:
        z = _ZERO_ARRAYS[n] = np.zeros(n, dtype="<i2")
    return z


def _pieces(spec: MessageSpec) -> tuple[list[Piece], list[Transition]]:
    from hybrid_audio_dagster.core.audio.trim import TrimRange

    pieces = [Piece(seg, s.audio, s.sha256, TrimRange(s.trim_start, s.trim_end)) for seg, s in zip(spec.segment_ids, spec.stems)]
    return pieces, [Transition(pause_frames=p) for p in spec.pauses]


def setup_core(specs, workdir):
    prepared = {id(s): _pieces(s) for s in specs}

    def write(spec: MessageSpec, path: Path) -> None:
        pieces, transitions = prepared[id(spec)]
        assemble(pieces, transitions, lead_frames=spec.lead, tail_frames=spec.tail).write(path)

    return write


def setup_core_nohash(specs, workdir):
    prepared = {id(s): _pieces(s) for s in specs}

    def write(spec: MessageSpec, path: Path) -> None:
        pieces, transitions = prepared[id(spec)]
        msg = assemble(pieces, transitions, lead_frames=spec.lead, tail_frames=spec.tail)
        atomic_write_bytes(path, msg.parts, fsync=False)

    return write


def setup_core_crc32c(specs, workdir):
    """Diagnostic for the proposed fix: the core with a hardware CRC32C instead of sha256."""
    import google_crc32c

    prepared = {id(s): _pieces(s) for s in specs}

    def write(spec: MessageSpec, path: Path) -> str:
        pieces, transitions = prepared[id(spec)]
        msg = assemble(pieces, transitions, lead_frames=spec.lead, tail_frames=spec.tail)
        atomic_write_bytes(path, msg.parts, fsync=False)
        crc = 0
        for part in msg.parts:  # the C extension takes bytes only: memoryviews are copied
            crc = google_crc32c.extend(crc, part if isinstance(part, bytes) else part.tobytes())
        return f"{crc:08x}"

    return write


def setup_core_assemble_only(specs, workdir):
    """Diagnostic: assemble only, nothing written (the CPU share of the core)."""
    prepared = {id(s): _pieces(s) for s in specs}

    def write(spec: MessageSpec, path: Path) -> None:
        pieces, transitions = prepared[id(spec)]
        assemble(pieces, transitions, lead_frames=spec.lead, tail_frames=spec.tail)

    return write


def _concat(spec: MessageSpec) -> np.ndarray:
    arrays = [_zeros_i16(spec.lead)] if spec.lead else []
    for i, s in enumerate(spec.stems):
        arrays.append(s.array[s.trim_start : s.trim_end])
        if i < len(spec.pauses) and spec.pauses[i]:
            arrays.append(_zeros_i16(spec.pauses[i]))
    if spec.tail:
        arrays.append(_zeros_i16(spec.tail))
    return np.concatenate(arrays)


def setup_numpy_soundfile(specs, workdir):
    import soundfile as sf

    def write(spec: MessageSpec, path: Path) -> None:
        sf.write(path, _concat(spec), spec.rate, subtype="PCM_16", format="WAV")

    return write


def setup_numpy_write(specs, workdir):
    def write(spec: MessageSpec, path: Path) -> None:
        data = _concat(spec)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.writev(fd, [wav_header(spec.rate, 1, "pcm_s16le", data.nbytes), data])
        finally:
            os.close(fd)

    return write


def _import_pydub():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Couldn't find ffmpeg": not needed for WAV
        import pydub
    return pydub


def setup_pydub(specs, workdir):
    pydub = _import_pydub()
    AudioSegment = pydub.AudioSegment
    segments: dict[str, object] = {}
    silences: dict[int, object] = {}

    def seg_of(stem: Stem):
        seg = segments.get(stem.sha256)
        if seg is None:
            a = stem.audio
            seg = segments[stem.sha256] = AudioSegment(data=a.data, sample_width=2, frame_rate=a.sample_rate, channels=1)
        return seg

    def silence(frames: int, rate: int):
        seg = silences.get((frames, rate))
        if seg is None:
            seg = silences[(frames, rate)] = AudioSegment(data=bytes(2 * frames), sample_width=2, frame_rate=rate, channels=1)
        return seg

    for spec in specs:  # stems decoded once, like the core's stem cache
        for s in spec.stems:
            seg_of(s)

    def write(spec: MessageSpec, path: Path) -> None:
        out = silence(spec.lead, spec.rate)
        for i, s in enumerate(spec.stems):
            out = out + seg_of(s).get_sample_slice(s.trim_start, s.trim_end)
            if i < len(spec.pauses) and spec.pauses[i]:
                out = out + silence(spec.pauses[i], spec.rate)
        out = out + silence(spec.tail, spec.rate)
        out.export(str(path), format="wav").close()

    return write


def setup_pydub_reload(specs, workdir):
    """Diagnostic: the simplest pydub script, which re-reads its stem WAVs for every message."""
    pydub = _import_pydub()
    AudioSegment = pydub.AudioSegment
    stem_dir = workdir / "pydub_stems"
    stem_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for spec in specs:
        for s in spec.stems:
            if s.sha256 not in files:
                files[s.sha256] = str(stem_dir / f"{s.sha256}.wav")
                Path(files[s.sha256]).write_bytes(wav_header(s.audio.sample_rate, 1, "pcm_s16le", len(s.audio.data)) + s.audio.data)

    def silence(frames: int, rate: int):
        return AudioSegment(data=bytes(2 * frames), sample_width=2, frame_rate=rate, channels=1)

    def write(spec: MessageSpec, path: Path) -> None:
        out = silence(spec.lead, spec.rate)
        for i, s in enumerate(spec.stems):
            out = out + AudioSegment.from_wav(files[s.sha256]).get_sample_slice(s.trim_start, s.trim_end)
            if i < len(spec.pauses) and spec.pauses[i]:
                out = out + silence(spec.pauses[i], spec.rate)
        out = out + silence(spec.tail, spec.rate)
        out.export(str(path), format="wav").close()

    return write


def _external_inputs(specs, workdir: Path) -> Callable[[MessageSpec], list[str]]:
    """Trimmed stems and silences as WAV files (untimed) for the one-process-per-message tools."""
    inputs = workdir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    files: dict[tuple, str] = {}

    def wav_file(key: tuple, data: bytes, rate: int) -> str:
        key = (*key, rate)
        path = files.get(key)
        if path is None:
            path = str(inputs / f"{len(files)}.wav")
            Path(path).write_bytes(wav_header(rate, 1, "pcm_s16le", len(data)) + data)
            files[key] = path
        return path

    def inputs_of(spec: MessageSpec) -> list[str]:
        r = spec.rate
        out = [wav_file(("z", spec.lead), bytes(2 * spec.lead), r)] if spec.lead else []
        for i, s in enumerate(spec.stems):
            out.append(wav_file(("s", s.sha256), s.audio.data[2 * s.trim_start : 2 * s.trim_end], r))
            if i < len(spec.pauses) and spec.pauses[i]:
                out.append(wav_file(("z", spec.pauses[i]), bytes(2 * spec.pauses[i]), r))
        if spec.tail:
            out.append(wav_file(("z", spec.tail), bytes(2 * spec.tail), r))
        return out

    return inputs_of


def setup_sox(specs, workdir):
    sox = shutil.which("sox")
    inputs_of = _external_inputs(specs, workdir)
    prepared = {id(s): inputs_of(s) for s in specs}

    def write(spec: MessageSpec, path: Path) -> None:
        subprocess.run([sox, "-V1", "--no-glob", *prepared[id(spec)], "-t", "wav", str(path)], check=True)

    return write


def setup_ffmpeg(specs, workdir):
    ffmpeg = shutil.which("ffmpeg")
    inputs_of = _external_inputs(specs, workdir)
    lists = workdir / "lists"
    lists.mkdir(parents=True, exist_ok=True)
    prepared = {}
    for k, s in enumerate(specs):
        lst = lists / f"{k}.txt"
        lst.write_text("".join(f"file '{p}'\n" for p in inputs_of(s)))
        prepared[id(s)] = str(lst)

    def write(spec: MessageSpec, path: Path) -> None:
        subprocess.run(
            [ffmpeg, "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", prepared[id(spec)],
             "-c", "copy", "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact", str(path)],
            check=True,
        )

    return write


APPROACHES: dict[str, Callable] = {
    "core": setup_core,
    "numpy_soundfile": setup_numpy_soundfile,
    "numpy_write": setup_numpy_write,
    "core_nohash": setup_core_nohash,
    "core_crc32c": setup_core_crc32c,
    "pydub": setup_pydub,
    "pydub_reload": setup_pydub_reload,
    "sox": setup_sox,
    "ffmpeg": setup_ffmpeg,
}
# external tools are slow (one process per message): time them on fewer messages
EXTERNAL = {"sox", "ffmpeg"}


def available() -> dict[str, str | None]:
    """approach -> None if usable, else why it is skipped."""
    out: dict[str, str | None] = {name: None for name in APPROACHES}
    for tool in EXTERNAL:
        if shutil.which(tool) is None:
            out[tool] = f"{tool} is not installed"
    try:
        _import_pydub()
    except ImportError:
        out["pydub"] = out["pydub_reload"] = "pydub is not installed (pip install pydub)"
    try:
        import google_crc32c  # noqa: F401  (comes with google-cloud-storage, i.e. dagster-gcp)
    except ImportError:
        out["core_crc32c"] = "google-crc32c is not installed"
    return out


# --------------------------------------------------------------------------- running


def _verify_identical(specs: list[MessageSpec], writers: dict[str, Callable], workdir: Path, k: int) -> dict:
    """Write the first ``k`` messages with every approach; compare the files byte for byte."""
    ref_dir = workdir / "verify"
    clear_dir(ref_dir)
    result: dict[str, dict] = {}
    reference: list[bytes] = []
    for i, spec in enumerate(specs[:k]):
        path = ref_dir / f"core-{i}.wav"
        writers["core"](spec, path)
        reference.append(path.read_bytes())
        assert len(reference[-1]) == spec.nbytes, (len(reference[-1]), spec.nbytes)
    for name, write in writers.items():
        if name == "core":
            continue
        same = 0
        first_diff = None
        for i, spec in enumerate(specs[:k]):
            path = ref_dir / f"{name}-{i}.wav"
            write(spec, path)
            data = path.read_bytes()
            if data == reference[i]:
                same += 1
            elif first_diff is None:
                at = next((j for j, (a, b) in enumerate(zip(data, reference[i])) if a != b), min(len(data), len(reference[i])))
                first_diff = {"message": i, "byte": at, "size": len(data), "expected_size": len(reference[i])}
        result[name] = {"compared": k, "identical": same, "byte_identical": same == k, "first_difference": first_diff}
    shutil.rmtree(ref_dir, ignore_errors=True)
    return result


def run(scratch: Path, *, messages: int, reps: int, external_messages: int, verify_messages: int = 8, log=print) -> dict:
    """Run scenario 1; return its section of the report."""
    skipped = {k: v for k, v in available().items() if v}
    names = [n for n in APPROACHES if n not in skipped]
    specs = make_workload(max(messages, external_messages, verify_messages))
    msg_bytes = specs[0].nbytes
    work = scratch / "core"
    clear_dir(work)
    writers = {n: APPROACHES[n](specs, work / "setup") for n in names}
    writers_diag = {"core_assemble_only": setup_core_assemble_only(specs, work / "setup")}

    identical = _verify_identical(specs, writers, work, verify_messages)
    out_dir = work / "out"

    def timed(name: str, write: Callable, n: int) -> float:
        clear_dir(out_dir)
        batch = specs[:n]
        paths = [out_dir / f"m{i}.wav" for i in range(n)]
        with Stopwatch() as sw:
            for spec, path in zip(batch, paths):
                write(spec, path)
        clear_dir(out_dir)  # untimed: keeps live output to one batch
        return sw.seconds

    # warm-up: caches (zeros, pydub segments), page cache, allocator
    for name in names:
        timed(name, writers[name], min(20, messages) if name not in EXTERNAL else 2)
    per_rep: dict[str, list[float]] = {n: [] for n in [*names, *writers_diag]}
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            n = external_messages if name in EXTERNAL else messages
            per_rep[name].append(n / timed(name, writers[name], n))
        for name, write in writers_diag.items():
            per_rep[name].append(messages / timed(name, write, messages))
        log(f"  core rep {rep + 1}/{reps}: " + ", ".join(f"{n} {per_rep[n][-1]:,.0f}/s" for n in order))
    shutil.rmtree(work, ignore_errors=True)

    approaches = {}
    for name, values in per_rep.items():
        approaches[name] = {
            "messages_per_s": spread(values),
            "mb_per_s": median(values) * msg_bytes / 1e6 if name != "core_assemble_only" else None,
            "messages": external_messages if name in EXTERNAL else messages,
        }

    def ratio(a: str, b: str) -> float | None:
        if a not in per_rep or b not in per_rep:
            return None
        return median([x / y for x, y in zip(per_rep[a], per_rep[b])])

    return {
        "description": "assemble + AssembledMessage.write per message vs baselines, same messages, stems in memory",
        "message": {
            "sample_rate": RATE, "channels": 1, "sample_format": "pcm_s16le",
            "seconds": round(specs[0].frames / RATE, 3), "bytes": msg_bytes, "stems": len(specs[0].stems),
        },
        "reps": reps,
        "approaches": approaches,
        "skipped": skipped,
        "byte_identical": identical,
        "ratios": {
            "core_vs_numpy_soundfile": ratio("core", "numpy_soundfile"),
            "core_vs_numpy_write": ratio("core", "numpy_write"),
            "core_vs_pydub": ratio("core", "pydub"),
            "core_vs_pydub_reload": ratio("core", "pydub_reload"),
            "numpy_write_vs_pydub": ratio("numpy_write", "pydub"),
            "core_vs_sox": ratio("core", "sox"),
            "core_vs_ffmpeg": ratio("core", "ffmpeg"),
            "core_nohash_vs_numpy_write": ratio("core_nohash", "numpy_write"),
            "core_crc32c_vs_numpy_soundfile": ratio("core_crc32c", "numpy_soundfile"),
            "core_crc32c_vs_numpy_write": ratio("core_crc32c", "numpy_write"),
        },
    }


if __name__ == "__main__":  # pragma: no cover - manual use
    import json
    import sys

    from .common import scratch_dir

    with scratch_dir(sys.argv[1] if len(sys.argv) > 1 else None) as d:
        print(json.dumps(run(d, messages=500, reps=3, external_messages=20), indent=1))
