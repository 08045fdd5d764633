"""The pair rotation as Dagster sees it: where its state lives, the retry ledger, the
``rotation_cycle`` asset.

State lives under ``<root>/data/rotation/``:

* ``state.json`` (+ ``.lock``, ``.members/``): the :class:`~..core.rotation.RotationStore`
  built from the current dataset snapshots (name and developer slugs) and the template keys
  (its scripts: every template and variant, or those ``HYBRID_AUDIO_ROTATION_TEMPLATES``
  picks, e.g. ``followup-en,followup-en--soft_warm`` for an A/B test); the audit trail is
  ``<root>/logs/rotation_audit.jsonl``;
* ``retry_ledger.json`` (+ ``.lock``): what the rotation schedule launched and what must be
  launched again (see :class:`RetryLedger` and :mod:`..rotation_schedule`).

The asset is **not partitioned by cycle**, deliberately: the rotation has exactly one
current cycle and a materialization is a snapshot of it (cycle, cursor, progress, the next
pairs). A partition per cycle could only be materialized while its cycle is current (a
past cycle's preview no longer exists, so re-materializing its partition would either lie
or fail) and a backfill over cycles would be meaningless. The cycle number is metadata
instead, so the UI plots it, and progress, over materializations; the audit trail keeps
every advance.
"""

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from hybrid_audio_dagster.partitions import cycle_key, rotation_cycles_partitions

from hybrid_audio_dagster.core.fsutil import atomic_write_text, file_lock
from hybrid_audio_dagster.core.rotation import Assignment, DatasetError, RotationError, RotationStore, read_audit, script_counts
from hybrid_audio_dagster.core.template_variants import select_keys
from hybrid_audio_dagster.core.templates import Template, load_templates
from hybrid_audio_dagster.resources.paths import ProjectPaths
from hybrid_audio_dagster.assets.datasets import read_snapshot, snapshot_path

DEFAULT_SEED = "hybrid-audio"
SEED_ENV = "HYBRID_AUDIO_ROTATION_SEED"
TEMPLATES_ENV = "HYBRID_AUDIO_ROTATION_TEMPLATES"
PREVIEW_ROWS = 20
LEDGER_VERSION = 1
KEEP_TICKS = 64  # tick plans remembered for idempotent re-evaluation
KEEP_ABANDONED = 500


def rotation_dir(paths: ProjectPaths) -> Path:
    """``<root>/data/rotation``: the rotation state and the retry ledger."""
    return paths.data / "rotation"


def rotation_seed(env: Mapping[str, str] | None = None) -> str:
    """The configured seed: ``HYBRID_AUDIO_ROTATION_SEED`` or :data:`DEFAULT_SEED`.

    Read when used (not at import), so the schedule, the asset and the CLI agree. A new
    seed applies from the next cycle (or at once after ``RotationStore.reset``).
    """
    env = os.environ if env is None else env
    return env.get(SEED_ENV) or DEFAULT_SEED


def rotation_templates(env: Mapping[str, str] | None = None) -> list[str]:
    """The configured template selection: ``HYBRID_AUDIO_ROTATION_TEMPLATES``, comma- or
    space-separated; empty means every template and variant.

    An entry is a template key or ``<id>*``: ``followup-en,followup-en--soft_warm`` makes the
    scripts stream an A/B test of the template against that variant (the two strictly
    alternate, pair after pair); ``followup-en*`` takes the template and every variant of it.
    Read when used, like the seed; a change applies from the next scripts cycle.
    """
    env = os.environ if env is None else env
    return [p for p in (env.get(TEMPLATES_ENV) or "").replace(",", " ").split() if p]


@dataclass(frozen=True)
class Rotation:
    """The rotation store with the current datasets it was opened with (display text too)."""

    store: RotationStore
    names: dict[str, str]  # slug -> display
    developers: dict[str, str]
    templates: dict[str, Template]  # every template and variant (the scripts are some of them)
    scripts: tuple[str, ...] = ()  # the template keys the scripts stream draws from
    selection: tuple[str, ...] = ()  # HYBRID_AUDIO_ROTATION_TEMPLATES as read ((): all)
    unmatched: tuple[str, ...] = ()  # entries of the selection that match no template now

    def describe(self, a: Assignment) -> dict[str, Any]:
        """An assignment with display names (JSON-safe)."""
        return {
            "name": a.name,
            "name_display": self.names.get(a.name, a.name),
            "developer": a.developer,
            "developer_display": self.developers.get(a.developer, a.developer),
            "template": a.script,
            "cycle": a.cycle,
            "position": a.position,
        }

    def preview(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` assignments (script per pair, as the schedule draws them); no write."""
        return [self.describe(a) for a in self.store.preview(n, script_mode="pair")]


def open_rotation(paths: ProjectPaths, *, seed: str | None = None, templates: list[str] | None = None,
                  fsync: bool = True) -> Rotation:
    """The rotation store over the current snapshots and templates (``templates``: the
    selection of :func:`rotation_templates`, read from the environment when None).

    Raises ``FileNotFoundError`` when a dataset snapshot does not exist yet (materialize
    the dataset assets first) and :class:`~..core.rotation.DatasetError` when a dataset or
    the templates are empty, or when the selection matches none of the templates. Entries
    of the selection that match nothing (a variant removed since) are left out and listed
    in :attr:`Rotation.unmatched`: a removed variant leaves the stream like a removed
    template.
    """
    names = read_snapshot(paths, "names")
    developers = read_snapshot(paths, "developers")
    loaded = load_templates(paths.templates)
    selection = rotation_templates() if templates is None else list(templates)
    scripts, unmatched = select_keys(loaded, selection) if selection else (list(loaded), [])
    if not scripts:
        raise DatasetError(
            f"{TEMPLATES_ENV}={','.join(selection)!r} matches no template or variant (known: {', '.join(loaded)})"
        )
    store = RotationStore(
        rotation_dir(paths) / "state.json",
        names=names,
        developers=developers,
        scripts=scripts,
        seed=rotation_seed() if seed is None else seed,
        audit_path=paths.logs / "rotation_audit.jsonl",
        fsync=fsync,
    )
    return Rotation(store, names, developers, loaded, tuple(scripts), tuple(selection), tuple(unmatched))


# --------------------------------------------------------------------------- retry ledger


def _empty_ledger() -> dict[str, Any]:
    return {"version": LEDGER_VERSION, "pending": [], "outstanding": [], "abandoned": [], "ticks": []}


class RetryLedgerError(Exception):
    """The retry ledger file is unreadable or of another version."""


class RetryLedger:
    """A small JSON file of pairs to launch again, under an exclusive ``flock``.

    Layout (every list is JSON-safe and ordered):

    ``outstanding``
        requests handed to Dagster and not settled yet: ``run_key``, ``batch_seq``,
        ``tick``, ``issued_at``, ``template``, ``developer``, ``names``, ``attempt``, ``source``.
    ``pending``
        (name, developer, template) triples waiting for a (re)launch, with ``reason``,
        ``attempts`` (runs that failed), ``deferrals`` (ticks skipped because a stem was
        missing), ``first_tick``, ``last_tick``, ``last_run_id``, ``detail``.
    ``abandoned``
        triples given up on (too many failed attempts, or removed from a dataset), newest
        last, bounded to :data:`KEEP_ABANDONED`.
    ``ticks``
        ``[tick, plan]`` of the last :data:`KEEP_TICKS` schedule ticks, so a re-evaluated
        tick returns exactly the plan (and run keys) it returned the first time.

    Writes are atomic (temp file + rename); :meth:`transaction` holds the lock from read
    to write, so two evaluations never interleave. One instance serves one transaction at
    a time (make one per call, as :meth:`for_paths` does).
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.fsync = fsync
        self._written: str | None = None  # the ledger as last written, inside a transaction

    @classmethod
    def for_paths(cls, paths: ProjectPaths, *, fsync: bool = True) -> "RetryLedger":
        return cls(rotation_dir(paths) / "retry_ledger.json", fsync=fsync)

    def _lock(self, exclusive: bool):
        return file_lock(self.lock_path, exclusive=exclusive)

    def _load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _empty_ledger()
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise RetryLedgerError(f"{self.path}: corrupt retry ledger ({exc})") from exc
        if not isinstance(data, dict) or data.get("version") != LEDGER_VERSION:
            raise RetryLedgerError(f"{self.path}: unsupported retry ledger (expected version {LEDGER_VERSION})")
        for key, value in _empty_ledger().items():
            data.setdefault(key, value)
        return data

    def read(self) -> dict[str, Any]:
        """A consistent snapshot of the ledger (shared lock)."""
        with self._lock(exclusive=False):
            return self._load()

    @contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        """Yield the ledger for mutation; it is written back only if the block succeeds
        (:meth:`checkpoint` writes earlier, still under the lock)."""
        with self._lock(exclusive=True):
            data = self._load()
            self._written = json.dumps(data, sort_keys=True)
            try:
                yield data
                self.checkpoint(data)
            finally:
                self._written = None

    def checkpoint(self, data: dict[str, Any]) -> None:
        """Write ``data`` now; only inside :meth:`transaction` (which holds the lock)."""
        if getattr(self, "_written", None) is None:
            raise RuntimeError("RetryLedger.checkpoint() outside a transaction")
        data["ticks"] = data["ticks"][-KEEP_TICKS:]
        data["abandoned"] = data["abandoned"][-KEEP_ABANDONED:]
        text = json.dumps(data, sort_keys=True)
        if text != self._written:
            atomic_write_text(self.path, json.dumps(data, ensure_ascii=False, indent=1), fsync=self.fsync)
            self._written = text


# --------------------------------------------------------------------------- the asset


class RotationCycleConfig(dg.Config):
    """Run config of the rotation status asset."""

    preview: int = PREVIEW_ROWS  # rows of the "next pairs" table


def _esc(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def skipped_in_cycle(audit: list[dict[str, Any]], cycle: int) -> int:
    """Positions skipped (keys removed from a dataset) by the advances ending in ``cycle``."""
    total = 0
    for rec in audit:
        detail = rec.get("detail") or {}
        if rec.get("event") == "advance" and rec.get("rotation") == "pairs" and detail.get("cycle_after") == cycle:
            total += int(detail.get("skipped") or 0)
    return total


def _snapshot_fingerprint(paths: ProjectPaths, kind: str) -> str | None:
    try:
        return json.loads(snapshot_path(paths, kind).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError):
        return None


def preview_table(rows: list[dict[str, Any]]) -> str:
    body = "\n".join(
        f"| {i + 1} | {r['cycle']}:{r['position']} | {_esc(r['name_display'])} (`{r['name']}`) | "
        f"{_esc(r['developer_display'])} (`{r['developer']}`) | `{r['template']}` |"
        for i, r in enumerate(rows)
    )
    return "| # | cycle:pos | name | developer | template |\n|---|---|---|---|---|\n" + body


def ledger_table(ledger: dict[str, Any], limit: int = 50) -> str:
    rows = [
        f"| pending | `{p['name']}` | `{p['developer']}` | `{p['template']}` | {p.get('attempts', 0)} | "
        f"{p.get('deferrals', 0)} | {_esc(p.get('reason', ''))} |"
        for p in ledger["pending"]
    ] + [
        f"| outstanding | {len(o['names'])} name(s) | `{o['developer']}` | `{o['template']}` | {o['attempt']} | - | "
        f"`{_esc(o['run_key'])}` |"
        for o in ledger["outstanding"]
    ] + [
        f"| abandoned | `{a['name']}` | `{a['developer']}` | `{a['template']}` | {a.get('attempts', 0)} | "
        f"{a.get('deferrals', 0)} | {_esc(a.get('reason', ''))} |"
        for a in ledger["abandoned"][-limit:]
    ]
    if not rows:
        return "empty: nothing to retry"
    head = "| state | name | developer | template | attempts | deferrals | reason / run key |\n|---|---|---|---|---|---|---|\n"
    more = f"\n\n… and {len(rows) - limit} more" if len(rows) > limit else ""
    return head + "\n".join(rows[:limit]) + more


def variants_table(rotation: Rotation, counts, cycle: int) -> str:
    """One row per template key the stream draws from (or has handed out): the per-variant
    counts of the current cycle and of all time."""
    this = counts.in_cycle(cycle)
    keys = list(rotation.scripts) + sorted(k for k in counts.total if k not in rotation.scripts)
    body = "\n".join(
        f"| `{k}` | {rotation.templates[k].variant_name or '(template)' if k in rotation.templates else 'removed'} | "
        f"{'yes' if k in rotation.scripts else 'no'} | {this.get(k, 0)} | {counts.total.get(k, 0)} |"
        for k in keys
    )
    return "| template | variant | in the stream | this cycle | total |\n|---|---|---|---|---|\n" + body


def rotation_status_metadata(paths: ProjectPaths, *, preview: int = PREVIEW_ROWS, seed: str | None = None) -> dict[str, Any]:
    """Metadata of the rotation (what the asset records); reads only, never advances."""
    rotation = open_rotation(paths, seed=seed)
    store = rotation.store
    status = store.status()
    rows = rotation.preview(preview)
    ledger = RetryLedger.for_paths(paths).read()
    ticks = ledger["ticks"]
    last_tick = ticks[-1][1] if ticks else None
    progress = 100.0 * status.cursor / status.cycle_length if status.cycle_length else 0.0
    datasets = store.datasets
    audit = read_audit(store.audit_path)
    counts = script_counts(audit)
    return {
        "cycle": status.cycle,
        "cursor": status.cursor,
        "cycle_length": status.cycle_length,
        "progress_pct": round(progress, 2),
        "remaining": status.remaining,
        "skipped": skipped_in_cycle(audit, status.cycle),
        "seed": status.seed,
        "configured_seed": status.configured_seed,
        "dataset_changed": status.dataset_changed,
        "last_pair": " × ".join(status.last) if status.last else "none yet",
        "advances": status.seq,
        "rotation_templates": dg.MetadataValue.json(list(rotation.scripts)),
        "template_counts": dg.MetadataValue.json(counts.in_cycle(status.cycle)),
        "template_counts_total": dg.MetadataValue.json(dict(sorted(counts.total.items()))),
        "template_counts_by_cycle": dg.MetadataValue.json(counts.to_dict()["by_cycle"]),
        "variants": dg.MetadataValue.md(variants_table(rotation, counts, status.cycle)),
        **({"rotation_templates_unmatched": dg.MetadataValue.json(list(rotation.unmatched))} if rotation.unmatched else {}),
        "preview": dg.MetadataValue.md(preview_table(rows)),
        "fingerprints": dg.MetadataValue.json(
            {
                "cycle_membership": status.fingerprints,
                "current": {d: ks.fingerprint for d, ks in datasets.items()},
                "snapshots": {k: _snapshot_fingerprint(paths, k) for k in ("names", "developers")},
            }
        ),
        "retry_pending": len(ledger["pending"]),
        "retry_outstanding": len(ledger["outstanding"]),
        "retry_abandoned": len(ledger["abandoned"]),
        "retry_ledger": dg.MetadataValue.md(ledger_table(ledger)),
        "last_tick": dg.MetadataValue.json(last_tick or {}),
        "state_file": dg.MetadataValue.path(str(store.state_path)),
        "audit_file": dg.MetadataValue.path(str(store.audit_path)),
    }


@dg.asset(
    group_name="rotation",
    kinds={"json"},
    partitions_def=rotation_cycles_partitions,
    deps=["names_dataset", "developers_dataset", "message_templates", "rotation_advance"],
)
def rotation_cycle(context: dg.AssetExecutionContext, config: RotationCycleConfig, paths: ProjectPaths) -> dg.MaterializeResult:
    """One rotation cycle: membership, seed, progress, the next pairs, the runs its ticks
    launched, the retry ledger. Materializing it only reads the rotation state (it never
    advances it); ``rotation_advance`` runs hand pairs out."""
    if not 1 <= config.preview <= 500:
        raise dg.Failure(f"preview must be between 1 and 500 rows, got {config.preview}")
    try:
        metadata = rotation_status_metadata(paths, preview=config.preview)
    except (FileNotFoundError, RotationError) as exc:
        raise dg.Failure(f"cannot read the rotation: {exc}") from None
    key = context.partition_key
    current = cycle_key(metadata["cycle"])
    ledger = RetryLedger.for_paths(paths).read()
    launched = [
        r["run_key"] for _, plan in ledger["ticks"] for r in plan.get("requests", [])
        if cycle_key(plan.get("batch", {}).get("cycle_after", -1)) == key
    ]
    metadata["status"] = "current" if key == current else ("complete" if key < current else "not started")
    metadata["runs_launched"] = dg.MetadataValue.json(launched[-500:])
    metadata["runs_launched_count"] = len(launched)
    if key != current:  # progress fields describe the current cycle only; the counts, this one
        for label in ("cursor", "progress_pct", "remaining", "preview"):
            metadata.pop(label, None)
        by_cycle = metadata["template_counts_by_cycle"].value
        metadata["template_counts"] = dg.MetadataValue.json(by_cycle.get(str(int(key.rsplit("-", 1)[1])), {}))
    context.log.info(
        f"{key} ({metadata['status']}): {len(launched)} runs launched; current cycle {metadata['cycle']} at "
        f"{metadata['cursor'] if 'cursor' in metadata else metadata['cycle_length']}/{metadata['cycle_length']}"
    )
    return dg.MaterializeResult(metadata=metadata)
