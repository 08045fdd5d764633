"""Building the messages of many template × developer partitions in one pass (pure).

Work is driven name-major (a chunk of names at a time, every partition of the run for
each name) so each name stem is read once per run and memory stays flat however many
names and developers the run covers. Writing and hashing run on two threads (``os.writev``
and hashlib release the GIL); planning and stem loading stay on the calling thread.

Every stem is resolved *before* the first file is written (:func:`preflight`): a missing
or stale stem fails the whole run with the stem partitions to materialize, and nothing
changes on disk.

Crash and failure safety: every file is written atomically (temp file + rename), so no
partial message is ever under its final name. Manifest rows are spooled as they go and a
build first takes back the rows that a dead or failed writer of the partition left
(:func:`.manifest.recover_spools`), so after a ``kill -9`` only unfinished messages are
written again. A write error that would hit every later file too (disk full, permission
denied, read-only) stops the build with :class:`OutputWriteError` naming the path; the old
manifests stay as they were and the finished messages are recovered by the next run.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from hybrid_audio_dagster.core.audio.errors import AudioError
from hybrid_audio_dagster.core.audio.wav import PcmAudio, parse_wav
from hybrid_audio_dagster.core.fsutil import file_lock, is_fatal_write_error, safe_join
from hybrid_audio_dagster.core.messages.fingerprint import names_digest, partition_fingerprint, unchanged_partition
from hybrid_audio_dagster.core.messages.manifest import (
    MANIFEST_NAME,
    ManifestWriter,
    file_matches,
    manifest_path,
    read_manifest,
    recover_spools,
)
from hybrid_audio_dagster.core.messages.plan import MessagePlan, MessagePlanner, build_message, message_relpath
from hybrid_audio_dagster.core.messages.retire import LOCK_NAME
from hybrid_audio_dagster.core.stems.index import MissingStemError
from hybrid_audio_dagster.core.stems.store import StemRecord, StemStore
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import Template

NAME_CHUNK = 64
WRITE_THREADS = 2
WRITE_WINDOW = 8  # messages in flight at once (bounds memory: parts are views of cached stems)
PREVIEW_ROWS = 10
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")

# resolve(kind, owner partition key, template, segment id, rendered text) -> record
Resolve = Callable[[SegmentKind, str, Template, str, str], StemRecord]


class OutputWriteError(OSError):
    """Writing the messages failed in a way every later write would too (disk full,
    permission denied, ...): the build stopped. Names the path; nothing finished is lost."""


@dataclass(frozen=True)
class Partition:
    key: str
    template: Template
    developer_key: str
    developer: str


@dataclass
class PartitionResult:
    """What a run did to one partition, and the partition's whole current picture."""

    partition: Partition
    manifest: Path
    written: int = 0
    skipped: int = 0
    carried: int = 0  # rows of names outside a restricted run, kept as they were
    recovered: int = 0  # rows taken back from the spools of a writer that died or failed
    failed: list[str] = field(default_factory=list)
    messages: int = 0  # rows in the committed manifest
    audio_s: float = 0.0  # seconds of audio the manifest holds
    preview: list[dict] = field(default_factory=list)  # first rows of the current manifest
    unchanged: bool = False  # skipped whole: its fingerprint matched and every file is intact


class StemCache:
    """Decoded stems by sha256, verified on first read; LRU-bounded (name stems churn)."""

    def __init__(self, store: StemStore, capacity: int) -> None:
        self.store = store
        self.capacity = capacity
        self._items: OrderedDict[str, PcmAudio] = OrderedDict()

    def __call__(self, record: StemRecord) -> PcmAudio:
        audio = self._items.get(record.sha256)
        if audio is not None:
            self._items.move_to_end(record.sha256)
            return audio
        # verify, don't re-validate: the stem passed load_wav when it was stored, and the
        # bytes must still be the ones the record names
        audio = parse_wav(self.store.read_verified(record), f"stem {record.path}")
        self._items[record.sha256] = audio
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return audio


def _owner(kind: SegmentKind, partition: Partition, name_key: str) -> str:
    if kind is SegmentKind.NAME:
        return name_key
    return partition.developer_key if kind is SegmentKind.DEVELOPER else partition.template.id


def preflight(parts: Sequence[Partition], run_names: Sequence[str], names: Mapping[str, str], resolve: Resolve) -> list[MissingStemError]:
    """Every stem the run needs that is not stored with its current signature."""
    errors: list[MissingStemError] = []
    for p in parts:
        for seg in p.template.segments:
            if seg.kind is not SegmentKind.NAME:
                try:
                    resolve(seg.kind, _owner(seg.kind, p, ""), p.template, seg.id, seg.render(developer=p.developer))
                except MissingStemError as exc:
                    errors.append(exc)
    templates = {p.template.id: p.template for p in parts}
    for name_key in run_names:
        for tpl in templates.values():
            for seg in tpl.segments_of(SegmentKind.NAME):
                try:
                    resolve(SegmentKind.NAME, name_key, tpl, seg.id, seg.render(name=names[name_key]))
                except MissingStemError as exc:
                    errors.append(exc)
    return errors


@dataclass
class _State:
    result: PartitionResult
    planner: MessagePlanner
    old_rows: dict[str, dict]
    writer: ManifestWriter
    template_signature: str
    spools: list[Path] = field(default_factory=list)  # recovered spools, removed after the commit
    fingerprint: str | None = None  # what the committed manifest may carry (a run over every name)


class _Fingerprints:
    """Partition fingerprints of one run; the names digest is computed once per template."""

    def __init__(self, names: Mapping[str, str], resolve: Resolve) -> None:
        self.names = names
        self.resolve = resolve
        self._digests: dict[str, str | None] = {}

    def of(self, p: Partition, planner: MessagePlanner) -> str | None:
        tpl = p.template
        if tpl.id not in self._digests:
            self._digests[tpl.id] = names_digest(
                tpl, self.names, lambda key, seg, text: self.resolve(SegmentKind.NAME, key, tpl, seg.id, text)
            )
        digest = self._digests[tpl.id]
        return digest and partition_fingerprint(tpl, p.developer_key, p.developer, planner.fixed_fragments, digest)


@dataclass
class _Job:
    state: _State
    name_key: str
    name: str
    plan: MessagePlan
    message: object
    path: str


def build_partitions(
    parts: Sequence[Partition],
    *,
    names: Mapping[str, str],
    run_names: Sequence[str],
    resolve: Resolve,
    store: StemStore,
    output_root: str | Path,
    force: bool = False,
) -> list[PartitionResult]:
    """Build (or skip, when unchanged) every message of ``run_names`` in ``parts``; commit
    each partition's manifest. Names outside ``run_names`` keep their rows; rows of names no
    longer in ``names`` are dropped. Per-message failures are reported, not raised."""
    for name_key in run_names:
        if not SLUG.match(name_key):
            raise ValueError(f"name key {name_key!r} is not a slug")
    out_root = str(output_root)
    cache = StemCache(store, capacity=NAME_CHUNK + 8 * (len(parts) + 1))
    states: list[_State] = []
    with ExitStack() as locks:
        # one writer per manifest, across runs and processes (sorted: no lock-order deadlock)
        for folder in sorted({str(safe_join(out_root, p.template.id, p.developer_key)) for p in parts}):
            locks.enter_context(file_lock(Path(folder) / LOCK_NAME))
        return _build(parts, states, names, run_names, resolve, cache, out_root, force)


def _build(parts, states, names, run_names, resolve, cache, out_root, force) -> list[PartitionResult]:
    # a run over every name may skip an unchanged partition whole, and may vouch for the
    # manifest it commits (see .fingerprint); a restricted run does neither
    fingerprints = _Fingerprints(names, resolve) if set(run_names) == set(names) else None
    results: list[PartitionResult] = []
    try:
        for p in parts:
            mpath = manifest_path(out_root, p.template.id, p.developer_key)

            def stem_for(kind: SegmentKind, segment_id: str, text: str, p=p) -> StemRecord:
                return resolve(kind, _owner(kind, p, ""), p.template, segment_id, text)

            planner = MessagePlanner(p.template, developer_key=p.developer_key, developer=p.developer, stem_for=stem_for)
            _remove_manifest_temps(mpath)
            fingerprint = fingerprints.of(p, planner) if fingerprints else None
            if fingerprint and not force:
                same = unchanged_partition(mpath, out_root, fingerprint, expected_rows=len(names), preview_rows=PREVIEW_ROWS)
                if same is not None:
                    results.append(
                        PartitionResult(
                            p, mpath, skipped=same.rows, messages=same.rows, audio_s=same.audio_s, preview=same.preview, unchanged=True
                        )
                    )
                    continue
            old = {r["name_key"]: r for r in read_manifest(mpath)}
            # under the partition's lock: every spool here is a dead or failed writer's
            found = recover_spools(mpath, out_root)
            old.update(found.rows)
            result = PartitionResult(p, mpath, recovered=len(found.rows))
            results.append(result)
            states.append(_State(result, planner, old, ManifestWriter(mpath), p.template.signature(), found.spools, fingerprint))
        part_dirs = [str(safe_join(out_root, s.result.partition.template.id, s.result.partition.developer_key)) for s in states]
        pending: deque = deque()
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            try:
                for start in range(0, len(run_names), NAME_CHUNK):
                    for name_key in run_names[start : start + NAME_CHUNK]:
                        for state, part_dir in zip(states, part_dirs):
                            job = _plan_one(state, out_root, part_dir, name_key, names[name_key], resolve, cache, force)
                            if job is not None:
                                pending.append((job, pool.submit(_write, job)))
                                while len(pending) > WRITE_WINDOW:
                                    _finish(*pending.popleft())
                while pending:
                    _finish(*pending.popleft())
            except OutputWriteError:
                # writes already in flight may have finished on disk: record them, so the
                # next run keeps them instead of writing them again
                while pending:
                    try:
                        _finish(*pending.popleft())
                    except OutputWriteError:
                        pass
                raise
        selected = set(run_names)
        for state in states:
            for name_key, row in state.old_rows.items():
                if name_key not in selected and name_key in names:
                    _keep(state, row)
                    state.result.carried += 1
            # every row was planned by this run and is current: the manifest may say so
            state.writer.commit(fingerprint=None if state.result.failed else state.fingerprint)
            state.result.messages = state.writer.rows
            for spool in state.spools:  # their rows are in the manifest now
                spool.unlink(missing_ok=True)
    except BaseException:
        for state in states:
            state.writer.abort(keep_progress=True)  # finished messages stay recoverable
        raise
    return results


def _remove_manifest_temps(mpath: Path) -> None:
    """Half-written manifests (``.manifest.parquet.*.tmp``) of writers that died; called
    holding the partition's lock, so none is being written."""
    prefix = f".{MANIFEST_NAME}."
    try:
        names = os.listdir(mpath.parent)
    except OSError:
        return
    for n in names:
        if n.startswith(prefix) and n.endswith(".tmp"):
            (mpath.parent / n).unlink(missing_ok=True)


def _keep(state: _State, row: dict) -> None:
    state.writer.add(row)
    r = state.result
    r.audio_s += row["duration_s"]
    if len(r.preview) < PREVIEW_ROWS:
        r.preview.append(row)


def _plan_one(
    state: _State, out_root: str, part_dir: str, name_key: str, name: str, resolve: Resolve, load: StemCache, force: bool
) -> _Job | None:
    """Plan one message; return its write job, or None if unchanged (kept) or failed."""
    p = state.result.partition

    def stem_for(kind: SegmentKind, segment_id: str, text: str) -> StemRecord:
        return resolve(kind, name_key, p.template, segment_id, text)

    try:
        plan = state.planner.plan(name_key=name_key, name=name, stem_for=stem_for)
        old = state.old_rows.get(name_key)
        if not force and old is not None and old["input_signature"] == plan.input_signature and file_matches(out_root, old):
            _keep(state, old)
            state.result.skipped += 1
            return None
        message = build_message(plan, load)
        return _Job(state, name_key, name, plan, message, os.path.join(part_dir, f"{name_key}.wav"))
    except (MissingStemError, AudioError, OSError, ValueError) as exc:
        _failed(state, name_key, exc)
        return None


def _write(job: _Job) -> tuple[str, os.stat_result]:
    sha = job.message.write(job.path)
    return sha, os.stat(job.path)


def _failed(state: _State, name_key: str, exc: BaseException) -> None:
    p = state.result.partition
    state.result.failed.append(f"{p.template.id}/{p.developer_key}/{name_key}: {exc}")
    old = state.old_rows.get(name_key)
    if old is not None:
        _keep(state, old)  # the last good message stays on record


def _finish(job: _Job, future) -> None:
    """Record a written message (calling thread, in submission order)."""
    state, plan, tl = job.state, job.plan, job.message.timeline
    p = state.result.partition
    try:
        sha, st = future.result()
    except (AudioError, OSError, ValueError) as exc:
        if is_fatal_write_error(exc):
            raise OutputWriteError(
                exc.errno,
                f"cannot write messages: {exc.strerror}. Messages finished before it are kept and "
                "the old manifests are untouched; free space or fix the folder's permissions, then run again",
                exc.filename or job.path,
            ) from exc
        _failed(state, job.name_key, exc)
        return
    row = {
        "name_key": job.name_key,
        "name": job.name,
        "path": message_relpath(p.template.id, p.developer_key, job.name_key),
        "frames": tl.total_frames,
        "sample_rate": tl.sample_rate,
        "duration_s": tl.total_frames / tl.sample_rate,
        "bytes": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": sha,
        "input_signature": plan.input_signature,
        "template_signature": state.template_signature,
        "timeline": json.dumps(
            {**tl.to_dict(), "stem_paths": {s.stem.sha256: s.stem.path for s in plan.segments}},
            separators=(",", ":"),
        ),
        "gs_uri": None,  # set by the delivery asset (defs/delivery/assets.py) once uploaded
    }
    _keep(state, row)
    state.result.written += 1
