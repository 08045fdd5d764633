"""Typed failures of the GCS mirror, and the rule that says which ones are worth a retry.

Every error names the bucket (and the object when there is one) and never carries
credentials: messages are built from the HTTP status and the server's reason, with anything
that looks like a token or a signed-URL query string removed.

    DeliveryError
    ├── BucketNotFound       the bucket does not exist (404 on a bucket-level request)
    ├── PermissionDenied     401 / 403
    ├── TransientFailure     429, 5xx, timeouts, connection errors, after the retry budget
    ├── ObjectNotFound       the object does not exist (download of a missing object)
    ├── ChecksumMismatch     bytes on one side do not match the checksum of the other
    └── UnsafeObjectPath     a relative path that is absolute, has ``..`` or a backslash
"""

from __future__ import annotations

import re

__all__ = [
    "BucketNotFound",
    "ChecksumMismatch",
    "DeliveryError",
    "ObjectNotFound",
    "PermissionDenied",
    "TransientFailure",
    "UnsafeObjectPath",
    "is_transient",
    "redact",
]

#: HTTP statuses that a retry may cure (408 timeout, 429 rate limit, 5xx).
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

_SECRET_RE = re.compile(
    r"(?i)(access_token|token|signature|x-goog-signature|x-goog-credential|key|authorization)"
    r"([=:]\s*)([^\s&\"',}]+)"
)
_QUERY_RE = re.compile(r"\?[^\s\"']*")
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def redact(text: str, *, limit: int = 300) -> str:
    """``text`` without query strings or ``token=…``-like values, cut to ``limit`` characters."""
    text = _QUERY_RE.sub("", str(text))
    text = _BEARER_RE.sub(lambda m: f"{m.group(1)} <redacted>", text)
    text = _SECRET_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class DeliveryError(Exception):
    """Base class: a GCS operation of the mirror failed.

    Attributes:
        bucket: the bucket the operation was for.
        object_name: the object, when the operation was about one.
        status: the HTTP status the server answered, when there was an answer.
    """

    def __init__(self, message: str, *, bucket: str, object_name: str | None = None, status: int | None = None):
        super().__init__(message)
        self.bucket = bucket
        self.object_name = object_name
        self.status = status


class BucketNotFound(DeliveryError):
    """The configured bucket does not exist (or is not visible to these credentials)."""


class PermissionDenied(DeliveryError):
    """The credentials may not do this on the bucket (HTTP 401 or 403)."""


class TransientFailure(DeliveryError):
    """A retryable failure (429, 5xx, timeout, connection) that outlasted the retry budget.

    Attributes:
        attempts: how many attempts were made.
    """

    def __init__(self, message: str, *, bucket: str, object_name: str | None = None, status: int | None = None, attempts: int = 0):
        super().__init__(message, bucket=bucket, object_name=object_name, status=status)
        self.attempts = attempts


class ObjectNotFound(DeliveryError):
    """The object does not exist in the bucket."""


class ChecksumMismatch(DeliveryError):
    """Checksums disagree: a corrupt transfer or an object that changed underneath."""


class UnsafeObjectPath(DeliveryError, ValueError):
    """A relative path that would not stay below its root (never trust a name as a path)."""

    def __init__(self, message: str):
        super().__init__(message, bucket="")


def _status_of(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _google():
    """The google client's exception modules, imported on first use: a run that never talks to
    GCS (the usual one) does not pay ~0.3 s of imports at process start."""
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc
    from google.cloud.storage import exceptions as storage_exc

    return requests, gexc, auth_exc, storage_exc


def is_transient(exc: BaseException) -> bool:
    """True for failures a retry may cure: 408/429/5xx answers, timeouts, dropped connections."""
    if isinstance(exc, TransientFailure):
        return True
    if isinstance(exc, DeliveryError):
        return False
    requests, gexc, auth_exc, storage_exc = _google()
    if isinstance(exc, (gexc.TooManyRequests, gexc.ServerError)):
        return True
    if isinstance(exc, gexc.GoogleAPICallError):
        return _status_of(exc) in TRANSIENT_STATUSES
    if isinstance(exc, auth_exc.RefreshError):
        return bool(getattr(exc, "retryable", False))
    if isinstance(exc, storage_exc.InvalidResponse):
        return _status_of(exc) in TRANSIENT_STATUSES
    if isinstance(
        exc,
        (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            auth_exc.TransportError,
            ConnectionError,
            TimeoutError,
        ),
    ):
        return True
    return False


def translate(exc: BaseException, *, bucket: str, object_name: str | None, operation: str, bucket_level: bool = False) -> DeliveryError:
    """The typed :class:`DeliveryError` for a failure of the google client.

    ``bucket_level`` says that a 404 can only mean the bucket is missing (an upload or a
    listing); for an object read a 404 is :class:`ObjectNotFound`.
    """
    if isinstance(exc, DeliveryError):
        return exc
    _, gexc, auth_exc, storage_exc = _google()
    status = _status_of(exc)
    where = f"gs://{bucket}/{object_name}" if object_name else f"gs://{bucket}"
    reason = redact(getattr(exc, "message", None) or str(exc))
    if isinstance(exc, (auth_exc.RefreshError, auth_exc.InvalidOperation)) and not is_transient(exc):
        # a 401 made the transport try to refresh the credentials, and that failed
        return PermissionDenied(
            f"GCS credentials rejected for {operation} on bucket {bucket!r} ({where}): "
            f"{type(exc).__name__} (credentials could not be refreshed)",
            bucket=bucket,
            object_name=object_name,
            status=401,
        )
    if isinstance(exc, (gexc.Unauthorized, gexc.Forbidden)) or status in (401, 403):
        return PermissionDenied(
            f"GCS permission denied for {operation} on bucket {bucket!r} ({where}): HTTP {status}: {reason}",
            bucket=bucket,
            object_name=object_name,
            status=status,
        )
    if isinstance(exc, gexc.NotFound) or status == 404:
        if bucket_level:
            return BucketNotFound(
                f"GCS bucket {bucket!r} does not exist ({operation} {where}: HTTP 404)", bucket=bucket, object_name=object_name, status=404
            )
        return ObjectNotFound(
            f"GCS object {where} does not exist ({operation}: HTTP 404)", bucket=bucket, object_name=object_name, status=404
        )
    if isinstance(exc, storage_exc.DataCorruption):
        return ChecksumMismatch(
            f"GCS {operation} of {where}: checksum mismatch in transfer: {reason}", bucket=bucket, object_name=object_name, status=status
        )
    if is_transient(exc):
        return TransientFailure(
            f"GCS {operation} on bucket {bucket!r} ({where}) failed: {type(exc).__name__}: {reason}",
            bucket=bucket,
            object_name=object_name,
            status=status,
        )
    return DeliveryError(
        f"GCS {operation} on bucket {bucket!r} ({where}) failed: {type(exc).__name__}{f' HTTP {status}' if status else ''}: {reason}",
        bucket=bucket,
        object_name=object_name,
        status=status,
    )
