"""The ways scenario 1 (:mod:`bench.core_bench`) writes a message: the audio core, its
diagnostics and the baselines (numpy + soundfile, pydub, sox, ffmpeg), each producing the
same bytes from the same :class:`bench.workload.MessageSpec`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.workload import MessageSpec, Stem
from hybrid_audio_dagster.core.audio.assemble import (
    AssembledMessage,
    Piece,
    Transition,
    assemble,
)
from hybrid_audio_dagster.core.audio.wav import wav_header
from hybrid_audio_dagster.core.fsutil import atomic_write_bytes

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


def _assembler(specs) -> Callable[[MessageSpec], AssembledMessage]:
    """spec -> its assembled message, the pieces prepared once (untimed, as the asset's
    planner does before writing)."""
    prepared = {id(s): _pieces(s) for s in specs}

    def assembled(spec: MessageSpec) -> AssembledMessage:
        pieces, transitions = prepared[id(spec)]
        return assemble(pieces, transitions, lead_frames=spec.lead, tail_frames=spec.tail)

    return assembled


def setup_core(specs, workdir):
    assembled = _assembler(specs)

    def write(spec: MessageSpec, path: Path) -> None:
        assembled(spec).write(path)

    return write


def setup_core_nohash(specs, workdir):
    assembled = _assembler(specs)

    def write(spec: MessageSpec, path: Path) -> None:
        atomic_write_bytes(path, assembled(spec).parts, fsync=False)

    return write


def setup_core_crc32c(specs, workdir):
    """Diagnostic for the proposed fix: the core with a hardware CRC32C instead of sha256."""
    import google_crc32c

    assembled = _assembler(specs)

    def write(spec: MessageSpec, path: Path) -> str:
        msg = assembled(spec)
        atomic_write_bytes(path, msg.parts, fsync=False)
        crc = 0
        for part in msg.parts:  # the C extension takes bytes only: memoryviews are copied
            crc = google_crc32c.extend(crc, part if isinstance(part, bytes) else part.tobytes())
        return f"{crc:08x}"

    return write


def setup_core_assemble_only(specs, workdir):
    """Diagnostic: assemble only, nothing written (the CPU share of the core)."""
    assembled = _assembler(specs)

    def write(spec: MessageSpec, path: Path) -> None:
        assembled(spec)

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
            [
                ffmpeg,
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                prepared[id(spec)],
                "-c",
                "copy",
                "-map_metadata",
                "-1",
                "-fflags",
                "+bitexact",
                "-flags:a",
                "+bitexact",
                str(path),
            ],
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
