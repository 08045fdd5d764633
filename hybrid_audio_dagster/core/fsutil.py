"""Atomic file writes and path safety shared by every part that stores files."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, parts: bytes | Iterable[bytes], *, fsync: bool = True) -> None:
    """Write ``parts`` to ``path`` so that readers see either the old file or the whole new one.

    The data goes to a temp file in the same directory (same filesystem, so ``os.replace``
    is atomic), which is renamed over ``path``. On any error the temp file is removed and
    ``path`` is untouched. ``fsync=False`` skips the flush to disk for outputs that are
    verified by hash and cheap to regenerate (a crash may then leave an empty file, never a
    partial one under the final name that passes verification).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = [parts] if isinstance(parts, (bytes, bytearray, memoryview)) else list(parts)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        view_chunks = [memoryview(c) for c in chunks]
        total = sum(c.nbytes for c in view_chunks)
        written = 0
        while view_chunks:
            n = os.writev(fd, view_chunks[:1024])
            written += n
            # drop fully-written chunks, slice a partially-written one
            while view_chunks and n >= view_chunks[0].nbytes:
                n -= view_chunks[0].nbytes
                view_chunks.pop(0)
            if n and view_chunks:
                view_chunks[0] = view_chunks[0][n:]
        if written != total:  # pragma: no cover - defensive, writev loop guarantees it
            raise OSError(f"short write to {tmp}: {written} of {total} bytes")
        if fsync:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def safe_join(root: str | os.PathLike, *parts: str) -> Path:
    """Join ``parts`` below ``root`` and refuse anything that would land outside it.

    Each part must be a plain relative component chain (no absolute path, no ``..``
    escaping ``root``). Raises ``ValueError`` naming the offending part.
    """
    root_path = Path(root).resolve()
    candidate = root_path
    for part in parts:
        if not part or part.startswith(("/", "\\")) or "\x00" in part or (len(part) > 1 and part[1] == ":"):
            raise ValueError(f"unsafe path component {part!r}")
        candidate = candidate / part
    resolved = candidate.resolve()
    if resolved != root_path and root_path not in resolved.parents:
        raise ValueError(f"path {'/'.join(parts)!r} escapes {root_path}")
    return resolved


@contextmanager
def file_lock(lock_path: str | os.PathLike, *, exclusive: bool = True) -> Iterator[None]:
    """Hold an ``flock`` on ``lock_path`` (created if needed) for the ``with`` block.

    A fresh open file description per call, so threads of one process exclude each other
    too (flock locks belong to the description). Needs a local filesystem, not NFS.
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock
