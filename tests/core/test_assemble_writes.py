"""Nothing is written when an assembly fails, and every write is atomic: a failure at any
point leaves the previous file as it was (``core/audio/assemble.py``, ``core/fsutil.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hybrid_audio_dagster.core import fsutil
from hybrid_audio_dagster.core.audio.assemble import Transition, assemble
from hybrid_audio_dagster.core.audio.errors import FormatMismatchError
from tests.support.assemble import sha, small_piece

# --------------------------------------------------------------------------------------
# nothing written on failure; atomic writes
# --------------------------------------------------------------------------------------


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_failed_assembly_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out" / "msg.wav"
    with pytest.raises(FormatMismatchError):
        assemble([small_piece("a"), small_piece("b", rate=44100)], [Transition(pause_frames=10)]).write(out)
    assert not out.exists()
    assert not out.parent.exists() or _listing(out.parent) == []


def test_write_is_atomic_and_returns_the_file_hash(tmp_path: Path) -> None:
    msg = assemble([small_piece("a"), small_piece("b")], [Transition(pause_frames=10)])
    path = tmp_path / "m" / "msg.wav"
    digest = msg.write(path)
    assert digest == sha(path.read_bytes()) == msg.sha256()
    assert _listing(path.parent) == ["msg.wav"]
    assert sf.info(str(path)).frames == msg.timeline.total_frames


def _old_file(tmp_path: Path) -> Path:
    path = tmp_path / "msg.wav"
    path.write_bytes(b"previous version")
    return path


def _assert_untouched(path: Path) -> None:
    assert path.read_bytes() == b"previous version"
    assert _listing(path.parent) == [path.name], "no temp file left behind"


def test_parts_iterable_raising_midway_leaves_previous_file(tmp_path: Path) -> None:
    path = _old_file(tmp_path)

    def parts():
        yield b"RIFF"
        yield b"\x00" * 1000
        raise RuntimeError("stem store went away")

    with pytest.raises(RuntimeError, match="went away"):
        fsutil.atomic_write_bytes(path, parts(), fsync=False)
    _assert_untouched(path)


@pytest.mark.parametrize("fail", ["os.replace", "os.writev", "os.fsync", "KeyboardInterrupt"])
def test_failure_inside_atomic_write_leaves_previous_file(tmp_path: Path, monkeypatch, fail: str) -> None:
    path = _old_file(tmp_path)
    real_writev = os.writev
    calls = []

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    def writev_then_fail(fd, bufs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real_writev(fd, [bytes(bufs[0])[:10]])  # a partial write first

    if fail == "os.replace":
        monkeypatch.setattr(fsutil.os, "replace", boom)
    elif fail == "os.writev":
        monkeypatch.setattr(fsutil.os, "writev", writev_then_fail)
    elif fail == "os.fsync":
        monkeypatch.setattr(fsutil.os, "fsync", boom)
    else:

        def interrupt(*a, **k):
            raise KeyboardInterrupt

        monkeypatch.setattr(fsutil.os, "replace", interrupt)
    with pytest.raises((OSError, KeyboardInterrupt)):
        fsutil.atomic_write_bytes(path, [b"new " * 100, b"content"], fsync=True)
    _assert_untouched(path)


def test_message_write_failure_leaves_previous_file(tmp_path: Path, monkeypatch) -> None:
    path = _old_file(tmp_path)
    msg = assemble([small_piece("a"), small_piece("b")], [Transition(pause_frames=10)])
    monkeypatch.setattr(fsutil.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("EXDEV")))
    with pytest.raises(OSError):
        msg.write(path)
    _assert_untouched(path)


@pytest.mark.parametrize("max_write", [1, 3, 7, 4096])
def test_short_writes_and_many_parts_are_handled(tmp_path: Path, monkeypatch, max_write: int) -> None:
    """writev may write less than asked and takes at most IOV_MAX buffers: the result must
    still be the exact concatenation."""
    real_writev = os.writev

    def short_writev(fd, bufs):
        joined = b"".join(bytes(b) for b in bufs)
        return real_writev(fd, [joined[:max_write]])

    monkeypatch.setattr(fsutil.os, "writev", short_writev)
    rng = np.random.default_rng(max_write)
    parts = [rng.bytes(int(n)) for n in rng.integers(0, 5, size=2500)]  # includes empty parts
    parts.append(memoryview(b"tail-bytes")[2:])
    path = tmp_path / "x.bin"
    fsutil.atomic_write_bytes(path, parts, fsync=False)
    assert path.read_bytes() == b"".join(bytes(p) for p in parts)
    assert _listing(tmp_path) == ["x.bin"]
