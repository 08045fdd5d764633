"""The messages asset: one partition per template × developer, holding every name's message.

Work is driven name-major (a chunk of names at a time, every partition of the run for
each name) so each name stem is read once per run and memory stays flat however many
names and developers the run covers. Each partition's manifest is streamed to a temp
file and swapped in at the end.
"""


import json
import os
import re
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import dagster as dg

from ..cache_index import latest_metadata
from ..core.audio.errors import AudioError
from ..core.audio.wav import PcmAudio, parse_wav
from ..core.fsutil import safe_join
from ..core.messages import (
    ManifestWriter,
    MessagePlanner,
    build_message,
    file_matches,
    manifest_path,
    message_relpath,
    read_manifest,
)
from ..core.stems import StemRecord, StemStore
from ..core.templates import SegmentKind, Template, load_templates
from ..partitions import message_partition_dims, messages_partitions
from ..resources.paths import ProjectPaths
from .datasets import read_snapshot
from .stems import STEMS_META

NAME_CHUNK = 64
WRITE_THREADS = 2  # os.writev and hashlib release the GIL: two cores write and hash in parallel
WRITE_WINDOW = 8  # messages in flight at once (bounds memory: parts are views of cached stems)


class MessagesConfig(dg.Config):
    """Run config of the messages asset."""

    names: list[str] = []  # restrict to these name slugs (the on-demand path); [] = all names
    force: bool = False  # rebuild even messages whose inputs are unchanged


class MissingStemError(Exception):
    """A message needs a stem that the stem assets have not produced (yet)."""


@dataclass
class PartitionRun:
    template: Template
    developer_key: str
    developer: str
    old_rows: dict[str, dict]
    writer: ManifestWriter
    written: int = 0
    skipped: int = 0
    carried: int = 0
    failed: list[str] = field(default_factory=list)
    audio_s: float = 0.0
    template_signature: str = ""
    preview: list[dict] = field(default_factory=list)
    planner: MessagePlanner | None = None
    planner_error: str = ""


class StemCache:
    """Decoded stems by sha256; name stems are evicted chunk by chunk (LRU, bounded)."""

    def __init__(self, store: StemStore, capacity: int) -> None:
        self.store = store
        self.capacity = capacity
        self._items: OrderedDict[str, PcmAudio] = OrderedDict()

    def __call__(self, record: StemRecord) -> PcmAudio:
        audio = self._items.get(record.sha256)
        if audio is not None:
            self._items.move_to_end(record.sha256)
            return audio
        path = self.store.root / record.path
        data = path.read_bytes()
        # parse, don't re-validate: the stem passed load_wav when it was stored, and the
        # message verification compares every byte against it anyway
        audio = parse_wav(data, f"stem {record.path}")
        self._items[record.sha256] = audio
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return audio


def _slot_records(index: dict[str, dict]) -> dict[str, dict[str, StemRecord]]:
    return {
        partition: {slot: StemRecord.from_dict(r) for slot, r in (md.get(STEMS_META) or {}).items()}
        for partition, md in index.items()
    }


@dg.asset(
    partitions_def=messages_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="messages",
    kinds={"audio"},
    # one messages step at a time per deployment (deploy/dagster.yaml): two runs must never
    # rewrite the same partition's manifest at once
    pool="messages",
    deps=[
        dg.AssetDep("name_stems", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep(
            "developer_stems",
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="developer"),
        ),
        dg.AssetDep(
            "script_stems",
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="template"),
        ),
    ],
)
def messages(context: dg.AssetExecutionContext, config: MessagesConfig, paths: ProjectPaths) -> None:
    """Every name's message for a template and a developer, bit-exact joins of their stems."""
    started = time.perf_counter()
    instance = context.instance
    keys = list(context.partition_keys)
    templates = load_templates(paths.templates)
    names = read_snapshot(paths, "names")
    developers = read_snapshot(paths, "developers")
    if config.names:
        unknown = [n for n in config.names if n not in names]
        if unknown:
            raise dg.Failure(f"unknown name slug(s) {unknown[:10]}: not in the names dataset")
        run_names = list(dict.fromkeys(config.names))
    else:
        run_names = list(names)

    parts: list[tuple[str, str, str]] = []  # (partition key, template id, developer key)
    for key in keys:
        parts.append((str(key), *message_partition_dims(key)))
    for _, tid, dev in parts:
        if tid not in templates:
            raise dg.Failure(f"template {tid!r} is a partition but has no file in {paths.templates}")
        if dev not in developers:
            raise dg.Failure(f"developer {dev!r} is a partition but not in the developers dataset")

    name_index = _slot_records(latest_metadata(instance, dg.AssetKey("name_stems"), run_names))
    dev_index = _slot_records(latest_metadata(instance, dg.AssetKey("developer_stems"), {d for _, _, d in parts}))
    script_index = _slot_records(latest_metadata(instance, dg.AssetKey("script_stems"), {t for _, t, _ in parts}))
    store = StemStore(paths.stems)
    # name stems are used for one name's partitions then never again: keep one chunk of them
    cache = StemCache(store, capacity=NAME_CHUNK + 8 * (len(parts) + 1))

    runs: dict[str, PartitionRun] = {}
    try:
        for pkey, tid, dev in parts:
            mpath = manifest_path(paths.output, tid, dev)
            old = {r["name_key"]: r for r in read_manifest(mpath)}
            tpl = templates[tid]
            run = runs[pkey] = PartitionRun(tpl, dev, developers[dev], old, ManifestWriter(mpath), template_signature=tpl.signature())
            try:
                run.planner = _planner(run, dev_index, script_index)
            except MissingStemError as exc:
                run.planner_error = str(exc)  # every message of the partition fails with it

        selected = set(run_names)
        out_root = str(paths.output)
        part_dirs = {pkey: str(safe_join(out_root, tid, dev)) for pkey, tid, dev in parts}  # checked once per partition
        pending: deque = deque()
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            for start in range(0, len(run_names), NAME_CHUNK):
                for name_key in run_names[start : start + NAME_CHUNK]:
                    if not _SLUG.match(name_key):
                        raise dg.Failure(f"name key {name_key!r} is not a slug")
                    for pkey, tid, dev in parts:
                        job = _one_message(runs[pkey], out_root, part_dirs[pkey], name_key, names[name_key],
                                           name_index, cache, config.force)
                        if job is not None:
                            pending.append((job, pool.submit(_write_job, job)))
                            while len(pending) > WRITE_WINDOW:
                                _finish(*pending.popleft())
            while pending:
                _finish(*pending.popleft())
        # names outside a restricted run keep their manifest rows untouched
        for run in runs.values():
            for name_key, row in run.old_rows.items():
                if name_key not in selected and name_key in names:
                    run.writer.add(row)
                    run.carried += 1
            run.writer.commit()
    except BaseException:
        for run in runs.values():
            run.writer.abort()
        raise

    failures: list[str] = []
    for pkey, run in runs.items():
        failures += run.failed
        table = "\n".join(
            f"| {r['name']} | `{r['path']}` | {r['duration_s']:.2f} | `{r['sha256'][:12]}` |" for r in run.preview
        )
        context.add_asset_metadata(
            {
                "written": run.written,
                "skipped": run.skipped,
                "failed": len(run.failed),
                "messages": run.writer.rows,
                "audio_seconds": round(run.audio_s, 2),
                "manifest": dg.MetadataValue.path(str(manifest_path(paths.output, run.template.id, run.developer_key))),
                "template_signature": run.template_signature,
                "preview": dg.MetadataValue.md("| name | path | seconds | sha256 |\n|---|---|---|---|\n" + table),
            },
            partition_key=pkey,
        )
    total_written = sum(r.written for r in runs.values())
    total_skipped = sum(r.skipped for r in runs.values())
    context.log.info(
        f"{len(parts)} partitions × {len(run_names)} names: {total_written} written, {total_skipped} unchanged, "
        f"{len(failures)} failed in {time.perf_counter() - started:.2f}s"
    )
    if failures:
        raise dg.Failure(
            f"{len(failures)} message(s) could not be built (manifests keep the others):\n" + "\n".join(failures[:20])
        )


_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass
class _Job:
    run: PartitionRun
    name_key: str
    name: str
    plan: object
    message: object
    path: str


def _record(index: dict[str, dict[str, StemRecord]], asset: str, owner: str, slot: str, text: str) -> StemRecord:
    record = index.get(owner, {}).get(slot)
    if record is None or record.text != text:
        state = "missing" if record is None else "stale (text changed)"
        raise MissingStemError(f"stem {slot} for {owner!r} is {state}: materialize {asset} partition {owner!r}")
    return record


def _planner(
    run: PartitionRun, dev_index: dict[str, dict[str, StemRecord]], script_index: dict[str, dict[str, StemRecord]]
) -> MessagePlanner:
    tid = run.template.id

    def stem_for(kind: SegmentKind, segment_id: str, text: str) -> StemRecord:
        if kind is SegmentKind.DEVELOPER:
            return _record(dev_index, "developer_stems", run.developer_key, f"{tid}/{segment_id}", text)
        return _record(script_index, "script_stems", tid, f"{tid}/{segment_id}", text)

    return MessagePlanner(run.template, developer_key=run.developer_key, developer=run.developer, stem_for=stem_for)


def _one_message(
    run: PartitionRun,
    out_root: str,
    part_dir: str,
    name_key: str,
    name: str,
    name_index: dict[str, dict[str, StemRecord]],
    load: StemCache,
    force: bool,
) -> _Job | None:
    """Plan one message (main thread); return the write job, or None if skipped/failed."""
    tid = run.template.id

    def stem_for(kind: SegmentKind, segment_id: str, text: str) -> StemRecord:
        return _record(name_index, "name_stems", name_key, f"{tid}/{segment_id}", text)

    try:
        if run.planner is None:
            raise MissingStemError(run.planner_error)
        plan = run.planner.plan(name_key=name_key, name=name, stem_for=stem_for)
        old = run.old_rows.get(name_key)
        if not force and old is not None and old["input_signature"] == plan.input_signature and file_matches(out_root, old):
            run.writer.add(old)
            run.skipped += 1
            return None
        # stems are loaded here, in the main thread (the cache is not thread-safe); the
        # workers only write and hash, which release the GIL
        message = build_message(plan, load)
        return _Job(run, name_key, name, plan, message, os.path.join(part_dir, f"{name_key}.wav"))
    except (MissingStemError, AudioError, OSError, ValueError) as exc:
        _failed(run, name_key, exc)
        return None


def _write_job(job: _Job) -> tuple[str, os.stat_result]:
    sha = job.message.write(job.path)
    return sha, os.stat(job.path)


def _failed(run: PartitionRun, name_key: str, exc: BaseException) -> None:
    run.failed.append(f"{run.template.id}/{run.developer_key}/{name_key}: {exc}")
    old = run.old_rows.get(name_key)
    if old is not None:
        run.writer.add(old)  # keep the last good message on record


def _finish(job: _Job, future) -> None:
    """Record a written message (main thread, in submission order)."""
    run, plan, tl = job.run, job.plan, job.message.timeline
    try:
        sha, st = future.result()
    except (AudioError, OSError, ValueError) as exc:
        _failed(run, job.name_key, exc)
        return
    row = {
        "name_key": job.name_key,
        "name": job.name,
        "path": message_relpath(run.template.id, run.developer_key, job.name_key),
        "frames": tl.total_frames,
        "sample_rate": tl.sample_rate,
        "duration_s": tl.total_frames / tl.sample_rate,
        "bytes": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": sha,
        "input_signature": plan.input_signature,
        "template_signature": run.template_signature,
        "timeline": json.dumps(
            {**tl.to_dict(), "stem_paths": {p.stem.sha256: p.stem.path for p in plan.segments}},
            separators=(",", ":"),
        ),
    }
    run.writer.add(row)
    run.written += 1
    run.audio_s += row["duration_s"]
    if len(run.preview) < 10:
        run.preview.append(row)
