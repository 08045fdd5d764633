"""WAV decoding, validation and encoding.

A small RIFF parser of our own rather than libsndfile: libsndfile silently accepts a data
chunk shorter than its header declares, and we need that (a truncated TTS download) to be
an error. Samples are kept as the exact bytes of the file so joining never re-encodes.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hybrid_audio_dagster.core.audio.errors import (
    ClippedAudioError,
    EmptyAudioError,
    InvalidWavError,
    SilentAudioError,
    TruncatedWavError,
    UnsupportedFormatError,
)

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# The first two bytes of the KSDATAFORMAT_SUBTYPE GUIDs equal the plain format tags.
_SUBTYPE_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

#: sample format name -> (format tag, bits per sample, numpy dtype used for analysis)
SAMPLE_FORMATS: dict[str, tuple[int, int, str]] = {
    "pcm_s16le": (WAVE_FORMAT_PCM, 16, "<i2"),
    "pcm_s24le": (WAVE_FORMAT_PCM, 24, "<i4"),  # unpacked to int32 for analysis only
    "pcm_s32le": (WAVE_FORMAT_PCM, 32, "<i4"),
    "pcm_f32le": (WAVE_FORMAT_IEEE_FLOAT, 32, "<f4"),
}

MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 8


@dataclass(frozen=True, eq=False)
class PcmAudio:
    """Immutable PCM audio: the exact frame bytes of a WAV file plus its format.

    ``data`` holds interleaved little-endian frames exactly as stored in the file, so
    slicing and concatenating ``data`` is bit-exact by construction.
    """

    sample_rate: int
    channels: int
    sample_format: str
    data: bytes

    @property
    def bytes_per_frame(self) -> int:
        return SAMPLE_FORMATS[self.sample_format][1] // 8 * self.channels

    @property
    def frames(self) -> int:
        return len(self.data) // self.bytes_per_frame

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def format_key(self) -> tuple[int, int, str]:
        """What must match for two pieces of audio to be joined without conversion."""
        return (self.sample_rate, self.channels, self.sample_format)

    @cached_property
    def samples(self) -> np.ndarray:
        """Read-only array of shape (frames, channels): int16, int32 (24/32-bit) or float32."""
        return decode_samples(self.data, self.sample_format, self.channels)

    def slice_frames(self, start: int, end: int) -> PcmAudio:
        bpf = self.bytes_per_frame
        return PcmAudio(self.sample_rate, self.channels, self.sample_format, self.data[start * bpf : end * bpf])

    def full_scale(self) -> float:
        return full_scale(self.sample_format)

    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def full_scale(sample_format: str) -> float:
    bits = SAMPLE_FORMATS[sample_format][1]
    if sample_format == "pcm_f32le":
        return 1.0
    return float(2 ** (bits - 1))


def decode_samples(data: bytes, sample_format: str, channels: int) -> np.ndarray:
    if sample_format == "pcm_s24le":
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        values = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        values = np.where(values & 0x800000, values - 0x1000000, values).astype(np.int32)
        arr = values
    else:
        arr = np.frombuffer(data, dtype=SAMPLE_FORMATS[sample_format][2])
    arr = arr.reshape(-1, channels)
    arr.flags.writeable = False
    return arr


def encode_samples(samples: np.ndarray, sample_format: str) -> bytes:
    """Inverse of :func:`decode_samples` (for values already in range)."""
    if sample_format == "pcm_s24le":
        v = np.asarray(samples, dtype=np.int32).reshape(-1)
        u = (v & 0xFFFFFF).astype(np.uint32)
        out = np.empty((v.size, 3), dtype=np.uint8)
        out[:, 0] = u & 0xFF
        out[:, 1] = (u >> 8) & 0xFF
        out[:, 2] = (u >> 16) & 0xFF
        return out.tobytes()
    return np.ascontiguousarray(samples, dtype=SAMPLE_FORMATS[sample_format][2]).tobytes()


def _format_name(tag: int, bits: int, source: str) -> str:
    for name, (t, b, _) in SAMPLE_FORMATS.items():
        if t == tag and b == bits:
            return name
    kind = {WAVE_FORMAT_PCM: "PCM", WAVE_FORMAT_IEEE_FLOAT: "IEEE float"}.get(tag, f"format tag 0x{tag:04x}")
    raise UnsupportedFormatError(
        source,
        f"{kind} at {bits} bits per sample is not supported (supported: 16/24/32-bit PCM, 32-bit float)",
    )


def parse_wav(data: bytes, source: str = "<bytes>") -> PcmAudio:
    """Decode a RIFF/WAVE file's bytes into :class:`PcmAudio`.

    Raises InvalidWavError (not a WAV / malformed chunks), UnsupportedFormatError,
    TruncatedWavError (data chunk shorter than declared) or EmptyAudioError (0 frames).
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        head = bytes(data[:12])
        raise InvalidWavError(source, f"not a RIFF/WAVE file (starts with {head!r})")
    pos = 12
    fmt: tuple[int, int, int, int, int] | None = None
    pcm: bytes | None = None
    while pos + 8 <= len(data):
        chunk_id = bytes(data[pos : pos + 4])
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body_start = pos + 8
        body_end = body_start + size
        if chunk_id == b"fmt ":
            if size < 16 or body_end > len(data):
                raise InvalidWavError(source, f"fmt chunk too short ({size} bytes)")
            tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", data, body_start)
            if tag == WAVE_FORMAT_EXTENSIBLE:
                if size < 40:
                    raise InvalidWavError(source, "WAVE_FORMAT_EXTENSIBLE fmt chunk shorter than 40 bytes")
                sub = bytes(data[body_start + 24 : body_start + 40])
                if sub[2:] != _SUBTYPE_TAIL:
                    raise UnsupportedFormatError(source, "WAVE_FORMAT_EXTENSIBLE with a non-PCM/float subformat")
                tag = struct.unpack_from("<H", sub)[0]
            fmt = (tag, channels, rate, block_align, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise InvalidWavError(source, "data chunk before fmt chunk")
            available = len(data) - body_start
            # 0xFFFFFFFF / 0 sizes are written by streaming encoders that cannot seek back.
            riff_size = struct.unpack_from("<I", data, 4)[0]
            # a 0 size means "unknown" only when the RIFF size is unknown too or the file
            # runs past it; otherwise it is a genuinely empty chunk (maybe followed by LIST)
            unknown = size == 0xFFFFFFFF or (size == 0 and (riff_size == 0xFFFFFFFF or len(data) > riff_size + 8))
            if unknown and available > 0:
                size = available
                body_end = len(data)
            if size > available:
                raise TruncatedWavError(
                    source,
                    f"data chunk declares {size} bytes but only {available} are present ({size - available} missing)",
                )
            pcm = bytes(data[body_start:body_end])
            break
        pos = body_end + (size & 1)  # chunks are word-aligned
    if fmt is None:
        raise InvalidWavError(source, "no fmt chunk")
    if pcm is None:
        raise InvalidWavError(source, "no data chunk")
    tag, channels, rate, block_align, bits = fmt
    sample_format = _format_name(tag, bits, source)
    if not 1 <= channels <= MAX_CHANNELS:
        raise UnsupportedFormatError(source, f"{channels} channels (1..{MAX_CHANNELS} supported)")
    if not 1000 <= rate <= MAX_SAMPLE_RATE:
        raise UnsupportedFormatError(source, f"sample rate {rate} Hz is out of range")
    expected_align = channels * bits // 8
    if block_align != expected_align:
        raise InvalidWavError(source, f"block align {block_align} != channels × bytes per sample ({expected_align})")
    if len(pcm) % block_align:
        raise TruncatedWavError(source, f"data chunk of {len(pcm)} bytes is not a whole number of {block_align}-byte frames")
    if not pcm:
        raise EmptyAudioError(source, "the data chunk holds no sample frames")
    return PcmAudio(rate, channels, sample_format, pcm)


def dbfs_to_amplitude(dbfs: float, sample_format: str) -> float:
    return full_scale(sample_format) * 10 ** (dbfs / 20)


def peak_dbfs(audio: PcmAudio) -> float:
    peak = float(np.max(np.abs(audio.samples.astype(np.float64)))) if audio.frames else 0.0
    if peak == 0:
        return float("-inf")
    return 20 * np.log10(peak / audio.full_scale())


def longest_full_scale_run(audio: PcmAudio) -> int:
    """Length of the longest run of consecutive frames at digital full scale on any channel."""
    s = audio.samples
    if audio.sample_format == "pcm_f32le":
        hot = np.abs(s) >= 1.0
    else:
        fs = int(audio.full_scale())
        hot = (s >= fs - 1) | (s <= -fs)
    best = 0
    for ch in range(audio.channels):
        col = hot[:, ch].astype(np.int8)
        if not col.any():
            continue
        edges = np.diff(np.concatenate(([0], col, [0])))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        best = max(best, int((ends - starts).max()))
    return best


def validate_audio(
    audio: PcmAudio,
    source: str = "<audio>",
    *,
    silence_dbfs: float = -60.0,
    max_full_scale_run: int = 2,
) -> PcmAudio:
    """Refuse audio that is silent or clipped; return it unchanged otherwise.

    ``max_full_scale_run``: a single full-scale sample can be a legitimate peak; longer
    runs mean the waveform was flattened against the rail (clipped).
    """
    if audio.frames == 0:
        raise EmptyAudioError(source, "no sample frames")
    if audio.sample_format == "pcm_f32le" and not np.isfinite(audio.samples).all():
        raise InvalidWavError(source, "float samples include NaN or infinity")
    level = peak_dbfs(audio)
    if level < silence_dbfs:
        shown = "-inf" if level == float("-inf") else f"{level:.1f}"
        raise SilentAudioError(source, f"peak level {shown} dBFS is below the silence threshold {silence_dbfs} dBFS")
    run = longest_full_scale_run(audio)
    if run > max_full_scale_run:
        raise ClippedAudioError(source, f"{run} consecutive full-scale samples (clipping; at most {max_full_scale_run} allowed)")
    return audio


def load_wav(data: bytes, source: str = "<bytes>", **validate_kwargs) -> PcmAudio:
    """:func:`parse_wav` then :func:`validate_audio`: the check every stem passes before use."""
    return validate_audio(parse_wav(data, source), source, **validate_kwargs)


def wav_header(sample_rate: int, channels: int, sample_format: str, data_bytes: int) -> bytes:
    """A canonical 44-byte header (PCM) or 58-byte header with fact chunk (float)."""
    tag, bits, _ = SAMPLE_FORMATS[sample_format]
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * block_align, block_align, bits)
    if tag == WAVE_FORMAT_IEEE_FLOAT:
        fmt += struct.pack("<H", 0)
        extra = b"fact" + struct.pack("<II", 4, data_bytes // block_align)
    else:
        extra = b""
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra + b"data" + struct.pack("<I", data_bytes)
    riff_size = len(body) + data_bytes + (data_bytes & 1)
    return b"RIFF" + struct.pack("<I", riff_size) + body


def encode_wav(audio: PcmAudio) -> bytes:
    pad = b"\x00" if len(audio.data) & 1 else b""
    return wav_header(audio.sample_rate, audio.channels, audio.sample_format, len(audio.data)) + audio.data + pad
