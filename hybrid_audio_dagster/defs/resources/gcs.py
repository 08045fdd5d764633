"""The GCS delivery resource: the bucket as delivery target and shared stem cache.

:class:`DeliveryResource` wraps ``dagster_gcp.GCSResource`` (its ``get_client()``) and the
pure mirror in ``core/delivery``. GCS is optional: with no bucket configured the resource
says ``enabled == False`` and every operation is a no-op that says "GCS is off", so the
batch, the UI and the CLI work locally with no Google library call and no credentials.

Configuration comes from the environment through :func:`gcs_resource_from_env`
(``HYBRID_AUDIO_GCS_BUCKET``, ``HYBRID_AUDIO_GCS_PREFIX`` default ``hybrid-audio``,
``GOOGLE_CLOUD_PROJECT``), each as a ``dg.EnvVar`` so only the variable's name is stored in
run snapshots. With ``STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT`` set, the google client
talks to that emulator with anonymous credentials (``google.cloud.storage.Client``'s own
rule, which ``GCSResource`` inherits).

Wiring, e.g. in an asset::

    def messages(context, paths: ProjectPaths, gcs: DeliveryResource):
        ...
        report = gcs.sync([InventoryEntry("messages", rel, path) for rel, path in written])
        return dg.MaterializeResult(metadata={"gcs": report.summary(), ...})
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from hybrid_audio_dagster.core.delivery.consistency import ConsistencyReport, build_report
from hybrid_audio_dagster.core.delivery.errors import DeliveryError
from hybrid_audio_dagster.core.delivery.health import GCSHealth, check_health
from hybrid_audio_dagster.core.delivery.layout import DEFAULT_PREFIX, BucketLayout, InventoryEntry
from hybrid_audio_dagster.core.delivery.mirror import GCSMirror
from hybrid_audio_dagster.core.delivery.records import DownloadResult, RemoteObject, RetrySettings, SyncReport, UploadResult
from hybrid_audio_dagster.core.delivery.repair import Locator, RepairResult, Validator, repair

__all__ = ["GCS_ENV_VARS", "GCS_OFF_MESSAGE", "DeliveryResource", "gcs_resource_from_env"]

#: Environment variables :func:`gcs_resource_from_env` reads, by field.
GCS_ENV_VARS = {"bucket": "HYBRID_AUDIO_GCS_BUCKET", "prefix": "HYBRID_AUDIO_GCS_PREFIX", "project": "GOOGLE_CLOUD_PROJECT"}
GCS_OFF_MESSAGE = "GCS is off (no bucket configured: set HYBRID_AUDIO_GCS_BUCKET to turn it on)"


def _value(v: str | None) -> str | None:
    """A field's value, also when the resource is used unresolved (outside a Dagster run)."""
    if isinstance(v, dg.EnvVar):
        return v.get_value()
    return v


class DeliveryResource(dg.ConfigurableResource):
    """GCS bucket access for delivery and the shared stem cache.

    Attributes:
        bucket: bucket name; empty means GCS is off.
        prefix: top folder in the bucket (layout in ``core/delivery/layout.py``).
        project: Google Cloud project (optional with an emulator or default credentials).
        max_attempts / retry_budget_s / timeout_s: retries of transient failures.
        workers: parallel uploads in :meth:`sync`.
    """

    bucket: str = Field(default="", description="GCS bucket; empty turns GCS off")
    prefix: str = Field(default=DEFAULT_PREFIX, description="object-name prefix in the bucket")
    project: str | None = Field(default=None, description="Google Cloud project")
    max_attempts: int = Field(default=6, description="attempts per request for transient failures")
    retry_budget_s: float = Field(default=60.0, description="no retry starts after this many seconds")
    timeout_s: float = Field(default=30.0, description="timeout of one request")
    workers: int = Field(default=4, description="parallel uploads during a sync")

    _mirror: GCSMirror | None = PrivateAttr(default=None)

    # -- state ------------------------------------------------------------------------------

    @property
    def bucket_name(self) -> str:
        return (_value(self.bucket) or "").strip()

    @property
    def enabled(self) -> bool:
        """Whether a bucket is configured."""
        return bool(self.bucket_name)

    @property
    def layout(self) -> BucketLayout:
        """The bucket layout (also when GCS is off, e.g. to show where things would go)."""
        prefix = _value(self.prefix)
        return BucketLayout(DEFAULT_PREFIX if prefix is None else prefix)

    @property
    def status_message(self) -> str:
        """One line for the UI and the CLI."""
        if not self.enabled:
            return GCS_OFF_MESSAGE
        return f"GCS on: gs://{self.bucket_name}/{self.layout.prefix}"

    def get_mirror(self) -> GCSMirror | None:
        """The :class:`GCSMirror` (one per resource instance), or ``None`` when GCS is off.

        Raises:
            DeliveryError: no Google credentials could be found (the message names the bucket).
        """
        if not self.enabled:
            return None
        if self._mirror is None:
            from dagster_gcp import GCSResource

            try:
                client = GCSResource(project=_value(self.project) or None).get_client()
            except Exception as exc:  # noqa: BLE001 - google.auth raises several kinds
                raise DeliveryError(
                    f"cannot create a GCS client for bucket {self.bucket_name!r}: {type(exc).__name__} "
                    "(set GOOGLE_APPLICATION_CREDENTIALS, run on GCP, or set STORAGE_EMULATOR_HOST)",
                    bucket=self.bucket_name,
                ) from None
            self._mirror = GCSMirror(
                client,
                self.bucket_name,
                self.layout,
                retry=RetrySettings(max_attempts=self.max_attempts, budget_s=self.retry_budget_s, timeout_s=self.timeout_s),
            )
        return self._mirror

    def uri(self, object_name: str) -> str | None:
        return f"gs://{self.bucket_name}/{object_name}" if self.enabled else None

    # -- operations (all no-ops when GCS is off) -------------------------------------------------

    def upload(
        self, local_path: str | os.PathLike, object_name: str, *, category: str | None = None, relative_path: str | None = None
    ) -> UploadResult:
        """Upload unless the bucket already has the same checksums; verified. See
        :meth:`GCSMirror.upload`. Off: ``UploadResult(action="off")``."""
        mirror = self.get_mirror()
        if mirror is None:
            return UploadResult("off", None, object_name)
        return mirror.upload(local_path, object_name, category=category, relative_path=relative_path)

    def download(self, object_name: str, local_path: str | os.PathLike, expected_sha256: str | None = None) -> DownloadResult:
        """Atomic, verified download. Off: ``DownloadResult(action="off")``, no file written."""
        mirror = self.get_mirror()
        if mirror is None:
            return DownloadResult("off", None, object_name, None)
        return mirror.download(object_name, local_path, expected_sha256)

    def fetch_stem(self, relative_path: str, local_path: str | os.PathLike, expected_sha256: str | None = None) -> DownloadResult | None:
        """The remote cache tier: download ``<prefix>/stems/<relative_path>`` to ``local_path``
        (atomic, verified) if the bucket has it. ``None`` when it does not, or GCS is off."""
        mirror = self.get_mirror()
        if mirror is None:
            return None
        return mirror.download_if_exists(mirror.layout.stem_object(relative_path), local_path, expected_sha256)

    def exists(self, object_name: str) -> bool:
        """Whether the object is in the bucket (``False`` when GCS is off)."""
        mirror = self.get_mirror()
        return False if mirror is None else mirror.exists(object_name)

    def delete(self, object_name: str) -> bool:
        """Remove one object (privacy erase); False when absent or GCS is off."""
        mirror = self.get_mirror()
        return mirror.delete(object_name) if mirror is not None else False

    def forget(self, erasure, output_root: str | os.PathLike) -> int:
        """The bucket's copies of what an erasure removed (``core.privacy.Erasure``) go too, and
        the manifests it rewrote replace theirs; how many objects were deleted (0 when off)."""
        if not self.enabled:
            return 0
        gone, manifests = erasure.bucket_objects(self.layout)
        deleted = sum(self.delete(name) for name in gone)
        for rel, name in manifests:
            self.upload(Path(output_root) / rel, name, category="manifests", relative_path=rel)
        return deleted

    def list_objects(self, prefix: str | None = None) -> list[RemoteObject]:
        """Objects below ``prefix`` (default: the layout's prefix); ``[]`` when GCS is off."""
        mirror = self.get_mirror()
        return [] if mirror is None else mirror.list(prefix)

    def sync(self, entries: Iterable[InventoryEntry]) -> SyncReport:
        """Upload what differs (one listing, then verified uploads on ``workers`` threads)."""
        mirror = self.get_mirror()
        if mirror is None:
            return SyncReport(enabled=False, message=GCS_OFF_MESSAGE)
        return mirror.sync(entries, workers=self.workers)

    def report(self, entries: Iterable[InventoryEntry]) -> ConsistencyReport:
        """The consistency report of ``entries`` against the bucket (empty, ``enabled=False``
        when off)."""
        mirror = self.get_mirror()
        if mirror is None:
            return ConsistencyReport(bucket="", prefix=self.layout.prefix, enabled=False)
        return build_report(mirror, entries)

    def repair(
        self, entries: Iterable[InventoryEntry], *, dry_run: bool = True, validate: Validator | None = None, locate: Locator | None = None
    ) -> RepairResult:
        """Verify and repair (see ``core/delivery/repair.py``); dry run by default."""
        mirror = self.get_mirror()
        if mirror is None:
            return RepairResult(dry_run=dry_run, enabled=False)
        return repair(mirror, entries, dry_run=dry_run, validate=validate, locate=locate)

    def health_check(self, *, write_probe: bool = False) -> GCSHealth:
        """Bucket reachable, listable, permissions held; never raises for a GCS failure."""
        endpoint = os.environ.get("STORAGE_EMULATOR_HOST") or None
        if not self.enabled:
            return GCSHealth(enabled=False, ok=True, bucket=None, prefix=self.layout.prefix, message=GCS_OFF_MESSAGE, endpoint=endpoint)
        try:
            mirror = self.get_mirror()
        except DeliveryError as exc:
            return GCSHealth(
                enabled=True,
                ok=False,
                bucket=self.bucket_name,
                prefix=self.layout.prefix,
                message="no GCS client",
                error_type=type(exc).__name__,
                error=str(exc),
                endpoint=endpoint,
            )
        return check_health(mirror, write_probe=write_probe, endpoint=endpoint)


def gcs_resource_from_env(env: Mapping[str, str] | None = None) -> DeliveryResource:
    """The :class:`DeliveryResource` the environment asks for.

    ``env`` (default ``os.environ``) decides which fields are set; each set one is a
    ``dg.EnvVar``, resolved from the process environment when Dagster initializes the
    resource (or when it is used directly). No ``HYBRID_AUDIO_GCS_BUCKET``: GCS is off.
    """
    env = os.environ if env is None else env
    fields = {name: dg.EnvVar(var) for name, var in GCS_ENV_VARS.items() if (env.get(var) or "").strip()}
    return DeliveryResource(**fields)
