"""The GCS mirror: checksum-skipping verified uploads, atomic verified downloads, listing.

:class:`GCSMirror` wraps a ``google.cloud.storage.Client`` (any object with its
``bucket`` / ``list_blobs`` methods) and one bucket. It knows nothing of Dagster: the
resource in ``defs/resources/gcs.py`` builds one from config.

Retries: every request is made with the google client's own retry turned off (its default
keeps going for 120 s) and an explicit per-request timeout; :mod:`tenacity` retries the
transient failures (429, 5xx, timeouts, dropped connections, see
:func:`~.errors.is_transient`) with exponential backoff and jitter, within
:class:`RetrySettings` (attempts and a total time budget). What outlasts the budget becomes
:class:`~.errors.TransientFailure`; a missing bucket :class:`~.errors.BucketNotFound`; 401/403
:class:`~.errors.PermissionDenied`. Uploads only ever read the local file, so a failed upload
leaves it as it was, and the next :meth:`GCSMirror.sync` (which always compares checksums)
picks it up.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

import tenacity

from hybrid_audio_dagster.core.delivery.errors import (
    BucketNotFound,
    ChecksumMismatch,
    DeliveryError,
    ObjectNotFound,
    PermissionDenied,
    TransientFailure,
    is_transient,
    translate,
)
from hybrid_audio_dagster.core.delivery.layout import BucketLayout, Checksums, InventoryEntry, file_checksums, path_exists
from hybrid_audio_dagster.core.delivery.records import DownloadResult, RemoteObject, RetrySettings, SyncReport, UploadResult

__all__ = ["GCSMirror"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_CONTENT_TYPES = {
    ".wav": "audio/wav",
    ".parquet": "application/vnd.apache.parquet",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
}


class GCSMirror:
    """One bucket, laid out by :class:`BucketLayout`.

    Args:
        client: a ``google.cloud.storage.Client`` (with ``STORAGE_EMULATOR_HOST`` set it
            talks to the emulator with anonymous credentials).
        bucket: bucket name.
        layout: a :class:`BucketLayout` or just its prefix.
        retry: :class:`RetrySettings`.
        sleep: the backoff's sleep (tests pass a fake one).
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        layout: BucketLayout | str | None = None,
        *,
        retry: RetrySettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not bucket or "/" in bucket:
            raise ValueError(f"invalid bucket name {bucket!r}")
        self.client = client
        self.bucket_name = bucket
        self.layout = layout if isinstance(layout, BucketLayout) else BucketLayout(BucketLayout().prefix if layout is None else layout)
        self.retry = retry or RetrySettings()
        self._sleep = sleep
        self._bucket = client.bucket(bucket)
        self._bucket_checked = False

    def __repr__(self) -> str:
        return f"GCSMirror(bucket={self.bucket_name!r}, prefix={self.layout.prefix!r})"

    # -- plumbing -------------------------------------------------------------------------

    def uri(self, object_name: str) -> str:
        return self.layout.uri(self.bucket_name, object_name)

    def _call(self, operation: str, fn: Callable[[], T], *, object_name: str | None = None, bucket_level: bool = False) -> T:
        """``fn()`` with transient failures retried; every failure typed."""
        r = self.retry
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(r.max_attempts) | tenacity.stop_after_delay(r.budget_s),
            wait=tenacity.wait_exponential(multiplier=r.initial_wait_s, max=r.max_wait_s) + tenacity.wait_random(0, r.initial_wait_s),
            retry=tenacity.retry_if_exception(is_transient),
            sleep=self._sleep,
            before_sleep=lambda state: log.warning(
                "GCS %s of %s: attempt %d failed (%s), retrying in %.2f s",
                operation,
                self.uri(object_name) if object_name else f"gs://{self.bucket_name}",
                state.attempt_number,
                type(state.outcome.exception()).__name__,
                state.next_action.sleep if state.next_action else 0.0,
            ),
            reraise=True,
        )
        try:
            return retrying(fn)
        except Exception as exc:  # noqa: BLE001 - every failure is translated to a typed one
            err = translate(exc, bucket=self.bucket_name, object_name=object_name, operation=operation, bucket_level=bucket_level)
            if isinstance(err, TransientFailure):
                attempts = retrying.statistics.get("attempt_number", 1)
                err = TransientFailure(
                    f"{err} (gave up after {attempts} attempts)",
                    bucket=err.bucket,
                    object_name=err.object_name,
                    status=err.status,
                    attempts=attempts,
                )
            if err is exc:
                raise
            raise err from exc

    def check_bucket(self) -> None:
        """Raise :class:`BucketNotFound` / :class:`PermissionDenied` unless the bucket can be
        listed. Done once per mirror before the first object read (a 404 on an object read
        cannot tell a missing object from a missing bucket)."""
        self._call(
            "bucket check",
            lambda: list(self.client.list_blobs(self.bucket_name, max_results=1, retry=None, timeout=self.retry.timeout_s)),
            bucket_level=True,
        )
        self._bucket_checked = True

    def _ensure_bucket(self) -> None:
        if not self._bucket_checked:
            self.check_bucket()

    # -- lookup ---------------------------------------------------------------------------

    def stat(self, object_name: str) -> RemoteObject | None:
        """The object's metadata, or ``None`` when it does not exist."""
        self._ensure_bucket()
        blob = self._call(
            "metadata read", lambda: self._bucket.get_blob(object_name, retry=None, timeout=self.retry.timeout_s), object_name=object_name
        )
        return None if blob is None else RemoteObject.from_blob(blob)

    def exists(self, object_name: str) -> bool:
        """Whether ``object_name`` is in the bucket."""
        return self.stat(object_name) is not None

    def delete(self, object_name: str) -> bool:
        """Remove ``object_name`` (a privacy erase; nothing else deletes); False when absent."""
        if self.stat(object_name) is None:
            return False
        blob = self._bucket.blob(object_name)
        self._call("delete", lambda: blob.delete(retry=None, timeout=self.retry.timeout_s), object_name=object_name)
        return True

    def list(self, prefix: str | None = None) -> list[RemoteObject]:
        """Every object whose name starts with ``prefix`` (default: the layout's prefix),
        sorted by name. Pages are fetched within one retried call: a failure restarts it."""
        if prefix is None:
            prefix = f"{self.layout.prefix}/" if self.layout.prefix else ""

        def fetch() -> list[RemoteObject]:
            blobs = self.client.list_blobs(
                self.bucket_name, prefix=prefix or None, retry=None, timeout=self.retry.timeout_s, page_size=1000
            )
            return [RemoteObject.from_blob(b) for b in blobs]

        objects = self._call("listing", fetch, object_name=prefix or None, bucket_level=True)
        self._bucket_checked = True
        return sorted(objects, key=lambda o: o.name)

    def remote_inventory(self) -> list[RemoteObject]:
        """Every stem, message and manifest below the layout's prefix."""
        return [*self.list(self.layout.stems_root), *self.list(self.layout.output_root)]

    # -- upload ---------------------------------------------------------------------------

    def upload(
        self,
        local_path: str | os.PathLike,
        object_name: str,
        *,
        category: str | None = None,
        relative_path: str | None = None,
        checksums: Checksums | None = None,
        remote: RemoteObject | None | Literal["unknown"] = "unknown",
    ) -> UploadResult:
        """Upload ``local_path`` as ``object_name`` unless the bucket already has it.

        Skips when the remote object's md5 and crc32c (those it reports) equal the local
        file's. Otherwise uploads with the locally computed md5 and crc32c declared, so the
        server refuses bytes that differ from what was hashed, then re-reads the object's
        metadata and compares again. The local file is only read.

        Args:
            category, relative_path: stored as custom metadata (with ``sha256``).
            checksums: the local file's, when the caller already has them.
            remote: the remote object as a listing saw it (``None``: absent), to save a
                metadata read; ``"unknown"`` reads it.

        Raises:
            ChecksumMismatch: the object read back does not match the local file.
            BucketNotFound, PermissionDenied, TransientFailure, DeliveryError.
        """
        local_path = Path(local_path)
        local = checksums or file_checksums(local_path)
        current = self.stat(object_name) if remote == "unknown" else remote
        if current is not None and local.matches(md5=current.md5, crc32c=current.crc32c, size=current.size):
            return UploadResult("skipped", self.uri(object_name), object_name, local.size, local.md5, local.crc32c, _compared(current))

        def send() -> None:
            blob = self._bucket.blob(object_name)
            blob.md5_hash = local.md5
            blob.crc32c = local.crc32c
            blob.metadata = {
                "sha256": local.sha256,
                **({"category": category} if category else {}),
                **({"relative_path": relative_path} if relative_path else {}),
            }
            blob.upload_from_filename(
                str(local_path), content_type=_content_type(local_path), checksum=None, retry=None, timeout=self.retry.timeout_s
            )

        self._ensure_bucket()
        self._call("upload", send, object_name=object_name, bucket_level=True)
        after = self.stat(object_name)
        if after is None or not local.matches(md5=after.md5, crc32c=after.crc32c, size=after.size):
            raise ChecksumMismatch(
                f"GCS upload of {self.uri(object_name)} did not verify: local md5={local.md5} "
                f"crc32c={local.crc32c} size={local.size}, remote "
                f"{'missing' if after is None else f'md5={after.md5} crc32c={after.crc32c} size={after.size}'}",
                bucket=self.bucket_name,
                object_name=object_name,
            )
        return UploadResult("uploaded", self.uri(object_name), object_name, local.size, local.md5, local.crc32c, _compared(after))

    # -- download -------------------------------------------------------------------------

    def download(
        self,
        object_name: str,
        local_path: str | os.PathLike,
        expected_sha256: str | None = None,
    ) -> DownloadResult:
        """Download ``object_name`` to ``local_path`` atomically, verified.

        The bytes go to a temp file beside ``local_path``, which is fsynced, hashed and
        compared with the md5/crc32c/size the server reports for that generation (and the
        ``sha256`` custom metadata, and ``expected_sha256``), then renamed over
        ``local_path``. On any failure the temp file is removed and ``local_path`` is as it
        was: a partial or unverified file never appears under the final name.

        Raises:
            ObjectNotFound, ChecksumMismatch, BucketNotFound, PermissionDenied, TransientFailure.
        """
        local_path = Path(local_path)
        remote = self.stat(object_name)
        if remote is None:
            raise ObjectNotFound(
                f"GCS object {self.uri(object_name)} does not exist", bucket=self.bucket_name, object_name=object_name, status=404
            )
        local_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{local_path.name}.", suffix=".part", dir=local_path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:

            def fetch() -> None:
                blob = self._bucket.blob(object_name, generation=remote.generation)
                with open(tmp, "wb") as fh:
                    blob.download_to_file(fh, checksum=None, retry=None, timeout=self.retry.timeout_s)
                    fh.flush()
                    os.fsync(fh.fileno())

            self._call("download", fetch, object_name=object_name)
            got = file_checksums(tmp)
            problems = []
            if got.matches(md5=remote.md5, crc32c=remote.crc32c, size=remote.size) is False:
                problems.append(
                    f"server reports md5={remote.md5} crc32c={remote.crc32c} size={remote.size}, "
                    f"received md5={got.md5} crc32c={got.crc32c} size={got.size}"
                )
            for label, want in (("metadata sha256", remote.sha256), ("expected sha256", expected_sha256)):
                if want and want != got.sha256:
                    problems.append(f"{label} {want} != received {got.sha256}")
            if problems:
                raise ChecksumMismatch(
                    f"GCS download of {self.uri(object_name)} did not verify: " + "; ".join(problems),
                    bucket=self.bucket_name,
                    object_name=object_name,
                )
            os.replace(tmp, local_path)
            _fsync_dir(local_path.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        verified = tuple(n for n, v in (("md5", remote.md5), ("crc32c", remote.crc32c), ("sha256", remote.sha256 or expected_sha256)) if v)
        return DownloadResult("downloaded", self.uri(object_name), object_name, local_path, got.size, got.sha256, verified)

    def download_if_exists(
        self, object_name: str, local_path: str | os.PathLike, expected_sha256: str | None = None
    ) -> DownloadResult | None:
        """:meth:`download`, or ``None`` when the bucket has no such object (the remote
        cache tier: a stem found here need not be synthesized)."""
        try:
            return self.download(object_name, local_path, expected_sha256)
        except ObjectNotFound:
            return None

    # -- sync -----------------------------------------------------------------------------

    def sync(self, entries: Iterable[InventoryEntry], *, workers: int = 4) -> SyncReport:
        """Upload every entry whose remote object is missing or differs; skip the rest.

        One listing of the bucket (not one read per file) decides what differs; uploads run
        on ``workers`` threads and each is verified. A failure of one upload is recorded in
        :attr:`SyncReport.failed` and the rest go on; a missing bucket or a permission error
        stops the sync (raised), since no other upload could succeed either.
        """
        start = time.perf_counter()
        entries = _dedupe(entries, self.layout)
        roots = {self.layout.stems_root if self.layout.split(o)[0] == "stems" else self.layout.output_root for o, _ in entries}
        remote: dict[str, RemoteObject] = {}
        for root in sorted(roots):
            remote.update((o.name, o) for o in self.list(root))
        report = SyncReport()
        todo: list[tuple[str, InventoryEntry, Checksums]] = []
        for object_name, entry in entries:
            if not path_exists(entry.local_path):
                report.missing_local.append(entry)
                continue
            local = file_checksums(entry.local_path)
            current = remote.get(object_name)
            if current is not None and local.matches(md5=current.md5, crc32c=current.crc32c, size=current.size):
                report.skipped.append(
                    UploadResult("skipped", self.uri(object_name), object_name, local.size, local.md5, local.crc32c, _compared(current))
                )
            else:
                todo.append((object_name, entry, local))

        def one(item: tuple[str, InventoryEntry, Checksums]) -> UploadResult | tuple[InventoryEntry, str]:
            object_name, entry, local = item
            try:
                return self.upload(
                    entry.local_path,
                    object_name,
                    category=entry.category,
                    relative_path=entry.relative_path,
                    checksums=local,
                    remote=remote.get(object_name),
                )
            except (BucketNotFound, PermissionDenied):
                raise
            except (DeliveryError, OSError) as exc:
                return entry, str(exc)

        if todo:
            with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
                for outcome in pool.map(one, todo):
                    if isinstance(outcome, UploadResult):
                        report.uploaded.append(outcome)
                    else:
                        report.failed.append(outcome)
        report.seconds = time.perf_counter() - start
        return report


def _dedupe(entries: Iterable[InventoryEntry], layout: BucketLayout) -> list[tuple[str, InventoryEntry]]:
    """``(object name, entry)`` once per object name (first entry wins)."""
    seen: dict[str, InventoryEntry] = {}
    for entry in entries:
        seen.setdefault(layout.entry_object(entry), entry)
    return list(seen.items())


def _compared(remote: RemoteObject) -> tuple[str, ...]:
    return tuple(n for n, v in (("md5", remote.md5), ("crc32c", remote.crc32c)) if v)


def _content_type(path: Path) -> str:
    return _CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
