"""A health check of the bucket: reachable, listable, which permissions the caller holds."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from hybrid_audio_dagster.core.delivery.errors import DeliveryError, redact

__all__ = ["REQUIRED_PERMISSIONS", "GCSHealth", "check_health"]

#: What the mirror needs: list for reports and sync, get for downloads, create (and delete
#: for overwriting a mismatched object) for uploads.
REQUIRED_PERMISSIONS: tuple[str, ...] = (
    "storage.objects.list",
    "storage.objects.get",
    "storage.objects.create",
    "storage.objects.delete",
)


@dataclass(frozen=True)
class GCSHealth:
    """The result of :func:`check_health`, with no secrets in it.

    Attributes:
        enabled: ``False`` when GCS is off (then ``ok`` is ``True`` and nothing was asked).
        ok: reachable, listable and (when the server answers the question) every
            :data:`REQUIRED_PERMISSIONS` held; with ``write_probe`` also a write and delete.
        permissions: held permissions as the server reports them (``None``: not answered).
        error_type / error: the failure, typed (``BucketNotFound``, ``PermissionDenied``,
            ``TransientFailure``, …) and described; ``None`` when healthy.
    """

    enabled: bool
    ok: bool
    bucket: str | None
    prefix: str | None
    message: str
    reachable: bool = False
    can_list: bool = False
    permissions: tuple[str, ...] | None = None
    missing_permissions: tuple[str, ...] = ()
    write_probe: bool | None = None
    latency_ms: float | None = None
    endpoint: str | None = None
    error_type: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_health(mirror: Any, *, write_probe: bool = False, endpoint: str | None = None) -> GCSHealth:
    """Ask the bucket behind ``mirror`` (a :class:`~.mirror.GCSMirror`) whether it can be used.

    Never raises for a GCS failure: the failure is the result. ``write_probe`` also uploads
    and deletes a tiny object below ``<prefix>/.health/``.
    """
    base = {"bucket": mirror.bucket_name, "prefix": mirror.layout.prefix, "endpoint": endpoint}
    start = time.perf_counter()
    try:
        mirror.check_bucket()
    except DeliveryError as exc:
        return GCSHealth(
            enabled=True,
            ok=False,
            message=f"bucket {mirror.bucket_name!r} is not usable",
            reachable=exc.status is not None,
            error_type=type(exc).__name__,
            error=redact(str(exc)),
            latency_ms=round((time.perf_counter() - start) * 1000, 1),
            **base,
        )
    latency = round((time.perf_counter() - start) * 1000, 1)
    permissions: tuple[str, ...] | None
    try:
        held = mirror._call(
            "permission test",
            lambda: mirror._bucket.test_iam_permissions(list(REQUIRED_PERMISSIONS), retry=None, timeout=mirror.retry.timeout_s),
        )
        permissions = tuple(sorted(held or ()))
    except DeliveryError:
        permissions = None  # not every server answers testIamPermissions; listing worked
    missing = tuple(p for p in REQUIRED_PERMISSIONS if permissions is not None and p not in permissions)
    probe: bool | None = None
    error_type = error = None
    if write_probe:
        name = f"{mirror.layout.prefix + '/' if mirror.layout.prefix else ''}.health/{uuid.uuid4().hex}"
        try:
            blob = mirror._bucket.blob(name)
            mirror._call(
                "write probe",
                lambda: blob.upload_from_string(b"ok", retry=None, timeout=mirror.retry.timeout_s),
                object_name=name,
                bucket_level=True,
            )
            mirror._call("write probe cleanup", lambda: blob.delete(retry=None, timeout=mirror.retry.timeout_s), object_name=name)
            probe = True
        except DeliveryError as exc:
            probe, error_type, error = False, type(exc).__name__, redact(str(exc))
    ok = not missing and probe is not False
    message = (
        (
            "bucket reachable"
            + (", all required permissions held" if permissions is not None else "")
            + (", write probe passed" if probe else "")
        )
        if ok
        else (f"missing permissions: {', '.join(missing)}" if missing else "write probe failed")
    )
    return GCSHealth(
        enabled=True,
        ok=ok,
        message=message,
        reachable=True,
        can_list=True,
        permissions=permissions,
        missing_permissions=missing,
        write_probe=probe,
        latency_ms=latency,
        error_type=error_type,
        error=error,
        **base,
    )
