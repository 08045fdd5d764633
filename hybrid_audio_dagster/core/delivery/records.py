"""Plain records of the mirror: retry settings, what a listing says, what an operation did."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hybrid_audio_dagster.core.delivery.layout import InventoryEntry

__all__ = ["DownloadResult", "RemoteObject", "RetrySettings", "SyncReport", "UploadResult"]


@dataclass(frozen=True)
class RetrySettings:
    """How hard to try before a transient failure is reported.

    Attributes:
        max_attempts: attempts per request, the first included.
        initial_wait_s: first backoff; doubles each retry (plus up to as much jitter).
        max_wait_s: cap of one backoff.
        budget_s: no new attempt starts after this many seconds since the first.
        timeout_s: connect and read timeout of one request.
    """

    max_attempts: int = 6
    initial_wait_s: float = 0.25
    max_wait_s: float = 8.0
    budget_s: float = 60.0
    timeout_s: float = 30.0


@dataclass(frozen=True)
class RemoteObject:
    """What a listing or a metadata read says about one object."""

    name: str
    size: int
    md5: str | None
    crc32c: str | None
    generation: int | None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def sha256(self) -> str | None:
        return self.metadata.get("sha256")

    @classmethod
    def from_blob(cls, blob: Any) -> RemoteObject:
        return cls(
            name=blob.name,
            size=int(blob.size or 0),
            md5=blob.md5_hash,
            crc32c=blob.crc32c,
            generation=blob.generation,
            metadata=dict(blob.metadata or {}),
        )


@dataclass(frozen=True)
class UploadResult:
    """What :meth:`GCSMirror.upload` did.

    Attributes:
        action: ``"uploaded"`` (sent, then re-read and verified), ``"skipped"`` (the remote
            object already had the same checksums) or ``"off"`` (GCS not configured).
        uri: ``gs://bucket/object`` (``None`` when off).
        verified_by: the checksums that were compared (``("md5", "crc32c")`` normally).
    """

    action: Literal["uploaded", "skipped", "off"]
    uri: str | None
    object_name: str
    size: int = 0
    md5: str | None = None
    crc32c: str | None = None
    verified_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class DownloadResult:
    """What :meth:`GCSMirror.download` wrote (``action="off"`` and no file when GCS is off)."""

    action: Literal["downloaded", "off"]
    uri: str | None
    object_name: str
    local_path: Path | None
    size: int = 0
    sha256: str | None = None
    verified_by: tuple[str, ...] = ()


@dataclass
class SyncReport:
    """What :meth:`GCSMirror.sync` did with a list of inventory entries.

    Attributes:
        enabled: ``False`` when GCS is off (then nothing else is filled).
        uploaded / skipped: one :class:`UploadResult` each.
        failed: ``(entry, error message)`` for uploads that failed; their local files are
            untouched and the next sync tries again.
        missing_local: entries whose local file does not exist (nothing to upload).
        seconds: wall time.
    """

    enabled: bool = True
    uploaded: list[UploadResult] = field(default_factory=list)
    skipped: list[UploadResult] = field(default_factory=list)
    failed: list[tuple[InventoryEntry, str]] = field(default_factory=list)
    missing_local: list[InventoryEntry] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def uris(self) -> dict[str, str]:
        """Object name → ``gs://`` URI of everything that is now in the bucket."""
        return {r.object_name: r.uri for r in (*self.uploaded, *self.skipped) if r.uri}

    def summary(self) -> dict[str, Any]:
        """Plain counts, for metadata and logs."""
        return {
            "enabled": self.enabled,
            "uploaded": len(self.uploaded),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "missing_local": len(self.missing_local),
            "bytes_uploaded": sum(r.size for r in self.uploaded),
            "seconds": round(self.seconds, 3),
            **({"message": self.message} if self.message else {}),
        }
