"""The bucket layout: where each local file lives in GCS, and the checksums that compare them.

The bucket mirrors the local folders below one prefix (default ``hybrid-audio``)::

    gs://<bucket>/<prefix>/stems/<stem path relative to the local stems/ folder>
    gs://<bucket>/<prefix>/output/<template>/<developer>/<name>.wav
    gs://<bucket>/<prefix>/output/<template>/<developer>/manifest.parquet

A stem's relative path is taken as given (the local stem layout belongs to the stem store;
today ``<engine>/<sig[:2]>/<sig>.wav``), so a change there moves the remote objects with it
and nothing here needs to know. Relative paths are data, never trusted as paths: one that is
empty, absolute, has a ``..``, ``.`` or empty component, a backslash, a NUL or another
control character is refused with :class:`UnsafeObjectPath`.

Every uploaded object carries custom metadata ``category`` (one of :data:`CATEGORIES`),
``relative_path`` and ``sha256``, so a listing alone tells which report row an object
belongs to, and a download can verify the full SHA-256 besides the server's md5/crc32c.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import google_crc32c

from hybrid_audio_dagster.core.delivery.errors import UnsafeObjectPath

__all__ = [
    "CATEGORIES",
    "DEFAULT_PREFIX",
    "STEM_CATEGORIES",
    "BucketLayout",
    "Checksums",
    "InventoryEntry",
    "file_checksums",
    "validate_relative_path",
]

DEFAULT_PREFIX = "hybrid-audio"

#: Stem categories (one per stem asset); their files live below ``stems/``.
STEM_CATEGORIES: tuple[str, ...] = ("name_stems", "developer_stems", "script_stems")
#: Every category of the consistency report, in report order; ``messages`` and
#: ``manifests`` live below ``output/``.
CATEGORIES: tuple[str, ...] = (*STEM_CATEGORIES, "messages", "manifests")

_ROOT_OF = {**{c: "stems" for c in STEM_CATEGORIES}, "messages": "output", "manifests": "output"}
_CHUNK = 1 << 20


def validate_relative_path(relative_path: str) -> str:
    """``relative_path`` if it is a safe ``/``-separated path below a root; raises otherwise.

    Raises:
        UnsafeObjectPath: empty, absolute, ``..``/``.``/empty components, backslashes,
            control characters, or a Windows drive prefix.
    """
    if not isinstance(relative_path, str) or not relative_path:
        raise UnsafeObjectPath(f"unsafe relative path {relative_path!r}: empty or not a string")
    if relative_path.startswith("/") or (len(relative_path) > 1 and relative_path[1] == ":"):
        raise UnsafeObjectPath(f"unsafe relative path {relative_path!r}: absolute")
    if "\\" in relative_path:
        raise UnsafeObjectPath(f"unsafe relative path {relative_path!r}: backslash")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in relative_path):
        raise UnsafeObjectPath(f"unsafe relative path {relative_path!r}: control character")
    for part in relative_path.split("/"):
        if part in ("", ".", ".."):
            raise UnsafeObjectPath(f"unsafe relative path {relative_path!r}: component {part!r}")
    return relative_path


def _validate_category(category: str) -> str:
    if category not in _ROOT_OF:
        raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")
    return category


@dataclass(frozen=True)
class InventoryEntry:
    """One file the local side has, or should have.

    Attributes:
        category: one of :data:`CATEGORIES`.
        relative_path: path below the local ``stems/`` folder (stems) or ``output/`` folder
            (messages, manifests), ``/``-separated; validated on creation.
        local_path: where the file is (or belongs) on this machine. A path that does not
            exist means "expected here but missing": the report calls it remote-only if the
            bucket has it and missing everywhere otherwise.
    """

    category: str
    relative_path: str
    local_path: Path

    def __post_init__(self) -> None:
        _validate_category(self.category)
        validate_relative_path(self.relative_path)
        object.__setattr__(self, "local_path", Path(self.local_path))


@dataclass(frozen=True)
class BucketLayout:
    """Object names below ``prefix``; see the module docstring for the layout.

    Attributes:
        prefix: the top folder in the bucket (``/``-separated, no leading/trailing slash);
            ``""`` puts everything at the bucket root.
    """

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        prefix = self.prefix.strip("/")
        if prefix:
            validate_relative_path(prefix)
        object.__setattr__(self, "prefix", prefix)

    def _join(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    @property
    def stems_root(self) -> str:
        """Object-name prefix of every stem, ending in ``/``."""
        return self._join("stems") + "/"

    @property
    def output_root(self) -> str:
        """Object-name prefix of every message and manifest, ending in ``/``."""
        return self._join("output") + "/"

    def stem_object(self, relative_path: str) -> str:
        """``<prefix>/stems/<relative_path>`` for a path relative to the local ``stems/``."""
        return self._join("stems", validate_relative_path(relative_path))

    def output_object(self, relative_path: str) -> str:
        """``<prefix>/output/<relative_path>`` for a path relative to the local ``output/``."""
        return self._join("output", validate_relative_path(relative_path))

    def message_object(self, template: str, developer: str, name: str) -> str:
        """``<prefix>/output/<template>/<developer>/<name>.wav`` (slugs, each one component)."""
        for part in (template, developer, name):
            if "/" in part:
                raise UnsafeObjectPath(f"unsafe path component {part!r}: contains '/'")
        return self.output_object(f"{template}/{developer}/{name}.wav")

    def manifest_object(self, template: str, developer: str, filename: str = "manifest.parquet") -> str:
        """``<prefix>/output/<template>/<developer>/<filename>``."""
        for part in (template, developer, filename):
            if "/" in part:
                raise UnsafeObjectPath(f"unsafe path component {part!r}: contains '/'")
        return self.output_object(f"{template}/{developer}/{filename}")

    def object_for(self, category: str, relative_path: str) -> str:
        """The object name of ``relative_path`` in ``category``."""
        root = _ROOT_OF[_validate_category(category)]
        return self._join(root, validate_relative_path(relative_path))

    def entry_object(self, entry: InventoryEntry) -> str:
        return self.object_for(entry.category, entry.relative_path)

    def split(self, object_name: str) -> tuple[str, str] | None:
        """``(root, relative_path)`` with root ``"stems"`` or ``"output"``, or ``None`` when
        ``object_name`` is outside both (or its rest is not a safe relative path)."""
        for root, start in (("stems", self.stems_root), ("output", self.output_root)):
            if object_name.startswith(start):
                rest = object_name[len(start) :]
                try:
                    return root, validate_relative_path(rest)
                except UnsafeObjectPath:
                    return None
        return None

    def guess_category(self, object_name: str, metadata: dict | None = None) -> str | None:
        """The category of a remote object: its ``category`` metadata when valid, else by
        place (``output/…/manifest*`` → manifests, other ``output/`` → messages, ``stems/`` →
        ``None``: a stem uploaded without metadata cannot be told apart)."""
        category = (metadata or {}).get("category")
        if category in _ROOT_OF:
            return category
        where = self.split(object_name)
        if where is None or where[0] == "stems":
            return None
        return "manifests" if where[1].rsplit("/", 1)[-1].startswith("manifest") else "messages"

    def uri(self, bucket: str, object_name: str) -> str:
        return f"gs://{bucket}/{object_name}"


@dataclass(frozen=True)
class Checksums:
    """Checksums of one file in the forms GCS reports them.

    Attributes:
        size: bytes.
        md5: base64 of the MD5 digest (GCS ``md5Hash``).
        crc32c: base64 of the big-endian CRC32C (GCS ``crc32c``).
        sha256: hex SHA-256 (kept in the object's custom metadata).
    """

    size: int
    md5: str
    crc32c: str
    sha256: str

    def matches(self, *, md5: str | None, crc32c: str | None, size: int | None = None) -> bool | None:
        """Whether remote checksums agree with these: ``False`` if any available one
        differs (or the size does), ``True`` if at least one hash was compared and all agree,
        ``None`` if the remote side has no hash to compare."""
        if size is not None and size != self.size:
            return False
        compared = False
        if md5:
            if md5 != self.md5:
                return False
            compared = True
        if crc32c:
            if crc32c != self.crc32c:
                return False
            compared = True
        return True if compared else None


def file_checksums(path: str | os.PathLike) -> Checksums:
    """MD5, CRC32C and SHA-256 of a file, in one streaming pass."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    crc = google_crc32c.Checksum()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            md5.update(chunk)
            sha.update(chunk)
            crc.update(chunk)
            size += len(chunk)
    return Checksums(
        size=size,
        md5=base64.b64encode(md5.digest()).decode("ascii"),
        crc32c=base64.b64encode(crc.digest()).decode("ascii"),
        sha256=sha.hexdigest(),
    )


def checksums_of_bytes(data: bytes) -> Checksums:
    """:class:`Checksums` of bytes in memory (tests, small objects)."""
    return Checksums(
        size=len(data),
        md5=base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii"),
        crc32c=base64.b64encode(google_crc32c.Checksum(data).digest()).decode("ascii"),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def path_exists(path: Path) -> bool:
    try:
        return Path(path).is_file()
    except OSError:
        return False
