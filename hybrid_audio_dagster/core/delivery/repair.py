"""Verify-and-repair: turn a consistency report into uploads, downloads and a to-regenerate list.

:func:`plan_repair` decides, per out-of-sync object:

============  ==========================================================================
local_only    upload, if the local file passes ``validate``; else regenerate
mismatched    local wins when it passes ``validate`` (upload over the bucket's copy);
              otherwise download the bucket's copy (kept only if *it* passes ``validate``)
remote_only   download to the inventory's path, or to ``locate(category, relative_path)``
              for objects the inventory does not name; ignored when neither knows it
missing       regenerate (the caller runs the stem/message assets for these)
============  ==========================================================================

:func:`execute_repair` carries the plan out, or with ``dry_run=True`` only reports it and
touches neither side. A downloaded file replaces the local one only once it is verified
(checksums, then ``validate``); nothing is ever deleted, locally or in the bucket.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hybrid_audio_dagster.core.delivery.consistency import ConsistencyReport, ReportItem, build_report
from hybrid_audio_dagster.core.delivery.errors import BucketNotFound, DeliveryError, PermissionDenied
from hybrid_audio_dagster.core.delivery.layout import InventoryEntry

__all__ = ["RepairAction", "RepairOutcome", "RepairPlan", "RepairResult", "execute_repair", "plan_repair", "repair"]

Validator = Callable[[Path], bool]
Locator = Callable[[str, str], "Path | None"]
ActionKind = Literal["upload", "download", "regenerate", "ignore"]


@dataclass(frozen=True)
class RepairAction:
    """One planned step for one object."""

    kind: ActionKind
    item: ReportItem
    local_path: Path | None
    reason: str


@dataclass
class RepairPlan:
    actions: list[RepairAction] = field(default_factory=list)

    def of_kind(self, kind: ActionKind) -> list[RepairAction]:
        return [a for a in self.actions if a.kind == kind]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(("upload", "download", "regenerate", "ignore"), 0)
        for a in self.actions:
            out[a.kind] += 1
        return out


@dataclass(frozen=True)
class RepairOutcome:
    """What happened to one action: ``planned`` (dry run), ``done``, ``failed`` or
    ``regenerate`` (a download whose file did not pass validation)."""

    action: RepairAction
    status: Literal["planned", "done", "failed", "regenerate"]
    detail: str = ""
    uri: str | None = None


@dataclass
class RepairResult:
    """What :func:`execute_repair` did.

    Attributes:
        dry_run: nothing was changed when true.
        outcomes: one per action of the plan.
        missing_everywhere: items no side can supply; the caller regenerates them.
        before / after: the reports around the repair (``after`` only when rechecked).
    """

    dry_run: bool
    outcomes: list[RepairOutcome] = field(default_factory=list)
    missing_everywhere: list[ReportItem] = field(default_factory=list)
    before: ConsistencyReport | None = None
    after: ConsistencyReport | None = None
    enabled: bool = True

    def counts(self) -> dict[str, int]:
        """``{"<kind>_<status>": n}``, e.g. ``upload_done``, ``download_planned``."""
        out: dict[str, int] = {}
        for o in self.outcomes:
            key = f"{o.action.kind}_{o.status}"
            out[key] = out.get(key, 0) + 1
        out["missing_everywhere"] = len(self.missing_everywhere)
        return out

    @property
    def ok(self) -> bool:
        return not any(o.status == "failed" for o in self.outcomes)


def _valid(validate: Validator | None, path: Path) -> tuple[bool, str]:
    if validate is None:
        return True, ""
    try:
        return bool(validate(path)), ""
    except Exception as exc:  # noqa: BLE001 - a validator that raises rejects the file
        return False, f"{type(exc).__name__}: {exc}"


def plan_repair(report: ConsistencyReport, *, validate: Validator | None = None, locate: Locator | None = None) -> RepairPlan:
    """The :class:`RepairPlan` for ``report`` (reads local files for ``validate`` only).

    Args:
        validate: ``validate(path) -> bool`` for a local (or downloaded) file, e.g. the WAV
            validator of the stem store; ``None`` accepts every file.
        locate: ``locate(category, relative_path) -> Path | None``: where a remote-only object
            that is not in the inventory belongs locally, if it is a known item.
    """
    plan = RepairPlan()
    for item in report.items:
        local = Path(item.local_path) if item.local_path else None
        if item.state == "in_sync":
            continue
        if item.state == "missing":
            plan.actions.append(RepairAction("regenerate", item, local, "on neither side"))
        elif item.state in ("local_only", "mismatched"):
            ok, why = _valid(validate, local)
            if ok:
                reason = "not in the bucket" if item.state == "local_only" else "local passes validation: local wins"
                plan.actions.append(RepairAction("upload", item, local, reason))
            elif item.state == "local_only":
                plan.actions.append(RepairAction("regenerate", item, local, f"local fails validation, not in the bucket {why}".strip()))
            else:
                plan.actions.append(
                    RepairAction("download", item, local, f"local fails validation: the bucket's copy replaces it {why}".strip())
                )
        elif item.state == "remote_only":
            if local is None and locate is not None and item.relative_path:
                local = locate(item.category, item.relative_path)
            if local is None:
                plan.actions.append(RepairAction("ignore", item, None, "not a known item"))
            else:
                plan.actions.append(RepairAction("download", item, Path(local), "missing locally"))
    return plan


def execute_repair(mirror: Any, plan: RepairPlan, *, dry_run: bool = True, validate: Validator | None = None) -> RepairResult:
    """Carry out ``plan`` with ``mirror`` (a :class:`~.mirror.GCSMirror`), or only report it.

    Per-object failures are recorded (status ``failed``) and the rest go on; a missing
    bucket or a permission error is raised. Downloads land in a temp file beside the target,
    are checked with ``validate`` and only then renamed over it.
    """
    result = RepairResult(dry_run=dry_run)
    for action in plan.actions:
        item = action.item
        if action.kind == "regenerate":
            result.missing_everywhere.append(item)
            result.outcomes.append(RepairOutcome(action, "planned" if dry_run else "regenerate", action.reason))
            continue
        if action.kind == "ignore" or dry_run:
            result.outcomes.append(RepairOutcome(action, "planned", action.reason, mirror.uri(item.object_name)))
            continue
        try:
            if action.kind == "upload":
                up = mirror.upload(action.local_path, item.object_name, category=item.category, relative_path=item.relative_path)
                result.outcomes.append(RepairOutcome(action, "done", up.action, up.uri))
            else:
                outcome = _download_validated(mirror, action, validate)
                result.outcomes.append(outcome)
                if outcome.status == "regenerate":
                    result.missing_everywhere.append(item)
        except (BucketNotFound, PermissionDenied):
            raise
        except (DeliveryError, OSError) as exc:
            result.outcomes.append(RepairOutcome(action, "failed", str(exc), mirror.uri(item.object_name)))
    return result


def _download_validated(mirror: Any, action: RepairAction, validate: Validator | None) -> RepairOutcome:
    target = Path(action.local_path)
    staging = target.with_name(f".{target.name}.repair-{os.getpid()}")
    try:
        got = mirror.download(action.item.object_name, staging)
        ok, why = _valid(validate, staging)
        if not ok:
            return RepairOutcome(action, "regenerate", f"the bucket's copy fails validation too {why}".strip(), got.uri)
        os.replace(staging, target)
        return RepairOutcome(action, "done", f"downloaded, verified by {'+'.join(got.verified_by)}", got.uri)
    finally:
        staging.unlink(missing_ok=True)


def repair(
    mirror: Any,
    entries: Iterable[InventoryEntry],
    *,
    dry_run: bool = True,
    validate: Validator | None = None,
    locate: Locator | None = None,
    recheck: bool = True,
) -> RepairResult:
    """Report, plan and execute in one call; with ``recheck`` (and not ``dry_run``) also the
    report afterwards, in :attr:`RepairResult.after`."""
    entries = list(entries)
    before = build_report(mirror, entries)
    result = execute_repair(mirror, plan_repair(before, validate=validate, locate=locate), dry_run=dry_run, validate=validate)
    result.before = before
    if recheck and not dry_run:
        result.after = build_report(mirror, entries)
    return result
