"""``inbox_sensor``: files dropped in ``data/inbox/`` become ingest runs (decides only).

A tick reads the folder and never changes it: once a file is stable (same size and mtime on
two consecutive ticks, and older than ``min_age_s``), the sensor asks for a
``dataset_uploads`` partition and one ``ingest_job`` run naming the file and the sha256 it
read. The run key is the content hash plus the file's name and mtime, so re-evaluating a
tick (or "Test sensor" in the UI) asks for the same run, which the daemon launches once;
the run stores or rejects the file and rebuilds the rosters. The ``pipeline_sensor`` then
takes the upload's new names or developers through stems and messages.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import dagster as dg

from hybrid_audio_dagster.core.fsutil import file_sha256
from hybrid_audio_dagster.core.inbox.parse import REFERENCE_MAX_BYTES, REFERENCE_MAX_ROWS, detect_role
from hybrid_audio_dagster.defs.datasets.jobs import INGEST_JOB
from hybrid_audio_dagster.defs.partitions import uploads_partitions
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.tags import DRIVER_TAG, PIPELINE_TAG, SCOPE_TAG, STAGE_TAG, TRIGGER_TAG


@dataclass(frozen=True)
class InboxSettings:
    """Tunables of the inbox sensor.

    Attributes:
        min_age_s: a file must be at least this old (mtime) before it is read.
        max_bytes / max_rows: per-file limits, passed to the ingest run (it rejects bigger files);
            the run reads the file where it lies, so they are the by-reference bounds.
        max_files_per_tick: files requested per evaluation (the rest wait for the next tick).
    """

    min_age_s: float = 2.0
    max_bytes: int = REFERENCE_MAX_BYTES
    max_rows: int = REFERENCE_MAX_ROWS
    max_files_per_tick: int = 20


def upload_key(filename: str, sha256: str) -> str:
    return f"{detect_role(filename) or 'upload'}-{sha256[:16]}"


def _load_seen(cursor: str | None) -> dict:
    try:
        data = json.loads(cursor) if cursor else {}
    except ValueError:
        data = {}
    seen = data.get("seen") if isinstance(data, dict) else None
    return dict(seen) if isinstance(seen, dict) else {}


def evaluate_inbox(
    paths: ProjectPaths, cursor: str | None, settings: InboxSettings = InboxSettings(), *, now: float | None = None
) -> dg.SensorResult:
    """One tick: a pure function of the inbox folder and the cursor."""
    prev = _load_seen(cursor)
    now = time.time() if now is None else now
    seen: dict[str, list[int]] = {}
    requests: list[dg.RunRequest] = []
    keys: list[str] = []
    waiting = 0
    inbox = paths.inbox
    entries = sorted((p for p in inbox.iterdir() if not p.name.startswith(".")), key=lambda p: p.name) if inbox.is_dir() else []
    for path in entries:
        if path.is_dir() and not path.is_symlink():
            continue
        if path.is_symlink() or not path.is_file():
            st = path.lstat()
            sig = [0, st.st_mtime_ns]
            sha = hashlib.sha256(f"not-a-file:{path.name}".encode()).hexdigest()  # the run rejects it
        else:
            st = path.stat()
            sig = [st.st_size, st.st_mtime_ns]
            sha = ""
        seen[path.name] = sig
        if prev.get(path.name) != sig or now - st.st_mtime_ns / 1e9 < settings.min_age_s or len(requests) >= settings.max_files_per_tick:
            waiting += 1  # not stable yet (or over this tick's quota): a later tick asks for it
            continue
        if not sha:
            sha = file_sha256(path)
        key = upload_key(path.name, sha)
        role = detect_role(path.name) or "unknown"
        keys.append(key)
        requests.append(
            dg.RunRequest(
                run_key=f"ingest:{sha}:{path.name}:{st.st_mtime_ns}",
                job_name=INGEST_JOB,
                partition_key=key,
                run_config={
                    "ops": {
                        "dataset_uploads": {
                            "config": {
                                "inbox_file": path.name,
                                "sha256": sha,
                                "max_bytes": settings.max_bytes,
                                "max_rows": settings.max_rows,
                            }
                        }
                    }
                },
                tags={
                    PIPELINE_TAG: f"ingest-{sha[:16]}-{st.st_mtime_ns}",
                    STAGE_TAG: "datasets",
                    DRIVER_TAG: "daemon",
                    SCOPE_TAG: role,
                    TRIGGER_TAG: "inbox",
                },
            )
        )
    new_cursor = json.dumps({"seen": seen}, separators=(",", ":"), sort_keys=True)
    if not requests:
        reason = "waiting for files to settle" if waiting else "inbox empty"
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=new_cursor)
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[uploads_partitions.build_add_request(list(dict.fromkeys(keys)))],
        cursor=new_cursor,
    )


def build_inbox_sensor(
    name: str = "inbox_sensor",
    *,
    settings: InboxSettings = InboxSettings(),
    minimum_interval_seconds: int = 15,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """The inbox sensor (a factory so tests and deployments can change :class:`InboxSettings`).

    Off by default: an upload can cost TTS money, so a deployment turns it on knowingly (the
    spend guard bounds what an automated run may bill)."""

    @dg.sensor(
        name=name,
        job_name=INGEST_JOB,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Asks for an ingest run per stable file in data/inbox (the run validates, stores or rejects it).",
    )
    def _sensor(context: dg.SensorEvaluationContext, paths: ProjectPaths):
        return evaluate_inbox(paths, context.cursor, settings)

    return _sensor


inbox_sensor = build_inbox_sensor()
