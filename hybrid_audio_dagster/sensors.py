"""Sensors: the inbox (new lists → new partitions → their stems) and messages after new stems.

Flow for a file dropped in ``data/inbox/``:

1. ``inbox_sensor`` waits until the file is stable (same size and mtime on two consecutive
   ticks, and older than ``min_age_s``), validates it with the dataset rules
   (:func:`.dataset_admin.validate`), then either
   * accepts it: writes it into ``data/store/<kind>/`` (versioned), rebuilds the kind's
     snapshot with the dataset asset's code, adds the new slugs as dynamic partitions and
     requests ONE stems run over exactly those new partitions (a contiguous range: they are
     appended together), tagged ``hybrid_audio/ingest=<sha8>``; or
   * rejects it: moves it to ``data/rejected/`` next to a JSON report naming every problem;
     nothing from it reaches the datasets.
   A file whose exact content was already accepted (sha256 in the cursor or in the store) is
   moved to ``data/rejected/duplicates/`` with a note; nothing is ingested twice.
2. ``messages_after_stems_sensor`` sees that stems run succeed and requests one messages run:
   for new names, every template × developer partition restricted to the new names; for new
   developers, every template × those developers, all names.

One stems run per file, not one per key: Dagster's bookkeeping costs ~0.2 s per run on
sqlite, so 500 new names are one ~8 s run instead of 500 runs (~2 min), and the messages for
one file are built by one run (two concurrent runs rewriting the same manifests could lose
each other's rows).
"""


import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, PARTITION_NAME_TAG

from .core.inbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, InboxFileError, Report
from .dataset_admin import (
    DatasetAdminError,
    find_stored,
    ingest_verdict,
    reject_file,
    set_aside_duplicate,
    validate,
)
from .jobs import STEM_JOBS, developer_stems_job, messages_job, name_stems_job
from .partitions import developers_partitions, message_partition_key, names_partitions, templates_partitions
from .resources.paths import ProjectPaths

INGEST_TAG = "hybrid_audio/ingest"  # sha8 of the accepted file that caused the run
INGEST_KIND_TAG = "hybrid_audio/ingest_kind"  # "names" | "developers"
PARTITIONS = {"names": names_partitions, "developers": developers_partitions}
KIND_OF_JOB = {name_stems_job.name: "names", developer_stems_job.name: "developers"}


@dataclass(frozen=True)
class InboxSettings:
    """Tunables of the inbox sensor.

    Attributes:
        min_age_s: a file must be at least this old (mtime) before it is read.
        max_bytes / max_rows: per-file limits (the parser refuses bigger files).
        max_files_per_tick: files processed per evaluation (the rest wait for the next tick).
        processed_limit: how many content hashes the cursor remembers.
    """

    min_age_s: float = 2.0
    max_bytes: int = DEFAULT_MAX_BYTES
    max_rows: int = DEFAULT_MAX_ROWS
    max_files_per_tick: int = 20
    processed_limit: int = 1000


def _load_cursor(raw: str | None) -> dict:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return {"seen": dict(data.get("seen") or {}), "processed": list(data.get("processed") or [])}


def _range_tags(first: str, last: str) -> dict[str, str]:
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


def stems_run_request(kind: str, keys: Sequence[str], sha: str) -> dg.RunRequest:
    """One run of the kind's stems job over ``keys`` (contiguous, in partition order)."""
    tags = {INGEST_TAG: sha[:8], INGEST_KIND_TAG: kind}
    if len(keys) == 1:
        return dg.RunRequest(run_key=f"{sha}:{kind}:{keys[0]}", job_name=STEM_JOBS[kind].name, partition_key=keys[0], tags=tags)
    return dg.RunRequest(
        run_key=f"{sha}:{kind}:{keys[0]}...{keys[-1]}",
        job_name=STEM_JOBS[kind].name,
        tags={**tags, **_range_tags(keys[0], keys[-1])},
    )


def evaluate_inbox(
    paths: ProjectPaths,
    instance: dg.DagsterInstance,
    cursor: str | None,
    settings: InboxSettings = InboxSettings(),
    *,
    log=None,
    now: float | None = None,
) -> dg.SensorResult:
    """One inbox sensor tick (pure function of the folders, the instance and the cursor)."""
    state = _load_cursor(cursor)
    prev_seen: dict = state["seen"]
    processed: list[str] = state["processed"]
    now = time.time() if now is None else now
    inbox = paths.inbox
    if not inbox.is_dir():
        inbox.mkdir(parents=True, exist_ok=True)
    seen: dict[str, list[int]] = {}
    new_keys: dict[str, list[str]] = {"names": [], "developers": []}
    run_requests: list[dg.RunRequest] = []
    dataset_events: dict[str, dg.AssetMaterialization] = {}
    notes: list[str] = []
    waiting = 0
    handled = 0

    entries = sorted((p for p in inbox.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
    for path in entries:
        if path.is_dir() and not path.is_symlink():
            continue
        if handled >= settings.max_files_per_tick:
            if path.is_file() and not path.is_symlink():
                st = path.stat()
                seen[path.name] = [st.st_size, st.st_mtime_ns]  # keeps its stability for the next tick
            waiting += 1
            continue
        if path.is_symlink() or not path.is_file():
            err = InboxFileError("unreadable", "not a regular file (symbolic links and devices are not read)", filename=path.name)
            reject_file(paths, path, Report.from_error(err))
            notes.append(f"rejected {path.name!r}: not a regular file")
            handled += 1
            continue
        st = path.stat()
        sig = [st.st_size, st.st_mtime_ns]
        if prev_seen.get(path.name) != sig or now - st.st_mtime_ns / 1e9 < settings.min_age_s:
            seen[path.name] = sig  # not stable yet: read it on a later tick
            waiting += 1
            continue
        handled += 1
        verdict = validate(path, filename=path.name, max_bytes=settings.max_bytes, max_rows=settings.max_rows)
        report = verdict.report
        sha = report.sha256
        if sha and (sha in processed or find_stored(paths, sha)):
            set_aside_duplicate(paths, path, report, find_stored(paths, sha))
            notes.append(f"{path.name!r}: identical content already ingested; set aside")
            _remember(processed, sha, settings.processed_limit)
            continue
        if not verdict.ok:
            target = reject_file(paths, path, report)  # not remembered: a re-drop is judged (and refused) again
            notes.append(f"rejected {path.name!r} ({report.problem_code}): report {target.name}.report.json")
            continue
        kind = verdict.role
        try:
            stored, _ = ingest_verdict(paths, verdict)
        except (DatasetAdminError, InboxFileError, OSError) as exc:
            rep = Report(
                filename=report.filename, sha256=sha, size=report.size, role=kind, status="rejected",
                problem_code="dataset_rebuild_failed", problem_message=f"the {kind} dataset could not be rebuilt with this file: {exc}",
            )
            reject_file(paths, path, rep)
            notes.append(f"rejected {path.name!r}: dataset rebuild failed")
            continue
        path.unlink(missing_ok=True)
        _remember(processed, sha, settings.processed_limit)
        existing = set(instance.get_dynamic_partitions(PARTITIONS[kind].name)) | set(new_keys[kind])
        snapshot = json.loads((paths.datasets / f"{kind}.json").read_text(encoding="utf-8"))
        fresh = [i["key"] for i in snapshot["items"] if i["key"] not in existing]
        notes.append(f"accepted {path.name!r} as {kind}/{stored.name}: {len(fresh)} new {kind}")
        # the sensor rebuilt the snapshot: record it as a materialization of the dataset
        # asset so the UI shows the new version without waiting for the next batch
        dataset_events[kind] = dg.AssetMaterialization(
            asset_key=f"{kind}_dataset",
            metadata={
                "items": len(snapshot["items"]),
                "fingerprint": snapshot["fingerprint"],
                "new_partitions": len(fresh),
                "ingested_file": stored.name,
                "source": "inbox sensor",
            },
        )
        if fresh:
            new_keys[kind].extend(fresh)
            run_requests.append(stems_run_request(kind, fresh, sha))

    new_cursor = json.dumps({"seen": seen, "processed": processed[-settings.processed_limit :]}, separators=(",", ":"))
    if log is not None:
        for note in notes:
            log.info(note)
    requests = [PARTITIONS[k].build_add_request(keys) for k, keys in new_keys.items() if keys]
    if not run_requests and not requests:
        reason = "; ".join(notes) if notes else ("waiting for files to settle" if waiting else "inbox empty")
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=new_cursor)
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=requests,
        asset_events=list(dataset_events.values()),
        cursor=new_cursor,
    )


def _remember(processed: list[str], sha: str, limit: int) -> None:
    if sha in processed:
        processed.remove(sha)
    processed.append(sha)
    del processed[:-limit]


def build_inbox_sensor(
    name: str = "inbox_sensor",
    *,
    settings: InboxSettings = InboxSettings(),
    minimum_interval_seconds: int = 15,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """The inbox sensor (a factory so tests and deployments can change :class:`InboxSettings`)."""

    @dg.sensor(
        name=name,
        jobs=[name_stems_job, developer_stems_job],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Validates files dropped in data/inbox; accepted ones join the datasets and get their stems "
        "(messages follow via messages_after_stems_sensor), refused ones go to data/rejected with a report.",
    )
    def _sensor(context: dg.SensorEvaluationContext, paths: ProjectPaths):
        return evaluate_inbox(paths, context.instance, context.cursor, settings, log=context.log)

    return _sensor


inbox_sensor = build_inbox_sensor()


def _run_partition_keys(instance: dg.DagsterInstance, run: dg.DagsterRun, kind: str) -> list[str]:
    tags = run.tags
    if PARTITION_NAME_TAG in tags:
        return [tags[PARTITION_NAME_TAG]]
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start is None or end is None:
        return []
    keys = instance.get_dynamic_partitions(PARTITIONS[kind].name)
    if start not in keys or end not in keys:
        return []
    return keys[keys.index(start) : keys.index(end) + 1]


def messages_request_after(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.RunRequest | dg.SkipReason:
    """The messages run that follows a successful ingest stems run (pure; used by the sensor)."""
    if INGEST_TAG not in run.tags:
        return dg.SkipReason(f"run {run.run_id} was not started by the inbox")
    kind = run.tags.get(INGEST_KIND_TAG) or KIND_OF_JOB.get(run.job_name)
    if kind not in PARTITIONS:
        return dg.SkipReason(f"run {run.run_id}: unknown kind")
    keys = _run_partition_keys(instance, run, kind)
    templates = instance.get_dynamic_partitions(templates_partitions.name)
    developers = instance.get_dynamic_partitions(developers_partitions.name)
    if not keys or not templates or not developers:
        return dg.SkipReason(f"run {run.run_id}: no partitions to build messages for (run the full batch first)")
    if kind == "names":
        first_dev, last_dev, names = developers[0], developers[-1], keys
    else:
        first_dev, last_dev, names = keys[0], keys[-1], []
    first = message_partition_key(templates[0], first_dev)
    last = message_partition_key(templates[-1], last_dev)
    return dg.RunRequest(
        run_key=f"messages-after:{run.run_id}",
        job_name=messages_job.name,
        run_config={"ops": {"messages": {"config": {"names": list(names), "force": False}}}},
        tags={INGEST_TAG: run.tags[INGEST_TAG], INGEST_KIND_TAG: kind, **_range_tags(str(first), str(last))},
    )


@dg.run_status_sensor(
    name="messages_after_stems_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[name_stems_job, developer_stems_job],
    request_job=messages_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After an inbox stems run succeeds, builds the messages of its new names/developers.",
)
def messages_after_stems_sensor(context: dg.RunStatusSensorContext):
    return messages_request_after(context.instance, context.dagster_run)


ALL_SENSORS = [inbox_sensor, messages_after_stems_sensor]
