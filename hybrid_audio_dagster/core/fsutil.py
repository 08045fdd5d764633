"""Atomic file writes and path safety shared by every part that stores files."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Temp files and spools carry their writer in the name, ``<host id>-<pid>``, so a later run
# can tell a dead writer's leftovers (removed) from a live writer's file in progress (kept).
_OWNER_RE = re.compile(r"\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)(?:[.-][^.]*)?\.(?:tmp|rows)$")
LEGACY_TEMP_AGE_S = 3600.0  # a temp file without an owner tag (older code) is stale after this


def host_id() -> str:
    """Eight hex digits naming this host (its hostname, hashed) in temp file names."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def owner_tag() -> str:
    """``<host id>-<pid>`` of the calling process (evaluated per call: forks get their own)."""
    return f"{host_id()}-{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def temp_owner(name: str) -> tuple[str, int] | None:
    """(host id, pid) of a temp file or spool named by :func:`owner_tag`, else None."""
    m = _OWNER_RE.search(name)
    return (m["host"], int(m["pid"])) if m else None


def error_naming(exc: OSError, path: os.PathLike | str, what: str = "writing") -> OSError:
    """The same kind of error (ENOSPC, EACCES, ...), naming the final path."""
    if exc.filename is not None and str(exc.filename) == str(path):
        return exc
    new = type(exc)(exc.errno, f"{exc.strerror or exc} ({what})", str(path))
    new.__cause__ = exc
    return new


def atomic_write_bytes(path: str | os.PathLike, parts: bytes | Iterable[bytes], *, fsync: bool = True) -> None:
    """Write ``parts`` to ``path`` so that readers see either the old file or the whole new one.

    The data goes to a temp file in the same directory (same filesystem, so ``os.replace``
    is atomic), which is renamed over ``path``. On any error the temp file is removed and
    ``path`` is untouched, and an ``OSError`` (disk full, permission denied, ...) names
    ``path``. The temp file is ``.<name>.<host id>-<pid>.<random>.tmp``, so
    :func:`remove_stale_temp_files` can tell a dead writer's from a live one's. ``fsync=False`` skips the flush to disk for outputs that are
    verified by hash and cheap to regenerate (a crash may then leave an empty file, never a
    partial one under the final name that passes verification).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = [parts] if isinstance(parts, (bytes, bytearray, memoryview)) else list(parts)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{owner_tag()}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise error_naming(exc, path) from None
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
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise error_naming(exc, path) from None
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


def remove_stale_temp_files(*roots: str | os.PathLike, legacy_age_s: float = LEGACY_TEMP_AGE_S) -> list[Path]:
    """Delete the temp files (``.*.tmp``) that writers which died left below ``roots``.

    A temp file tagged with this host and a pid that is no longer alive is stale; one of a
    live process is kept (another run may be writing it right now); one of another host is
    kept (its pid means nothing here); an untagged one (older code) is stale once older than
    ``legacy_age_s``. Manifest spools (``.rows``) are not touched: the next messages build
    of their partition recovers their rows (:mod:`.messages.manifest`). Returns the removed
    paths. Symlinks are never followed.
    """
    here, now = host_id(), time.time()
    removed: list[Path] = []
    for root in roots:
        for folder, _dirs, files in os.walk(root):
            for name in files:
                if not (name.startswith(".") and name.endswith(".tmp")):
                    continue
                path = Path(folder) / name
                owner = temp_owner(name)
                try:
                    if owner is None:
                        st = path.lstat()
                        if now - st.st_mtime < legacy_age_s:
                            continue
                    elif owner[0] != here or pid_alive(owner[1]):
                        continue
                    path.unlink()
                    removed.append(path)
                except FileNotFoundError:
                    pass
    return removed


FATAL_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})


def is_fatal_write_error(exc: BaseException) -> bool:
    """A write error that every later write to the same place will hit too (disk full,
    quota, permission denied, read-only filesystem): stop, don't try the next file."""
    return isinstance(exc, OSError) and exc.errno in FATAL_WRITE_ERRNOS


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in chunks (memory stays flat for a large list)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
