"""The retry-ledger logic of the rotation: which pairs can be built now (stems readiness),
settling earlier requests from their runs (:func:`reconcile`) and turning pairs into
messages runs (:func:`plan_requests`).

Called under the ledger's lock by :func:`~hybrid_audio_dagster.defs.rotation.tick.evaluate_rotation_tick` and
:func:`~hybrid_audio_dagster.defs.rotation.tick.generate_next_pair`.
"""

import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from hybrid_audio_dagster.core.rotation.campaign import Rotation
from hybrid_audio_dagster.core.stems.index import MissingStemError
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import Template
from hybrid_audio_dagster.defs.partitions import developers_partitions, templates_partitions
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.rotation.plan import BATCH_TAG, REQUEST_TAG, PlannedRequest, RotationSettings, Triple, request_run_key
from hybrid_audio_dagster.defs.stems.lookup import CampaignStems

_DONE_BAD = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


# --------------------------------------------------------------------------- stems readiness


def stem_problems(
    instance: dg.DagsterInstance, rotation: Rotation, triples: Iterable[Triple], *, paths: ProjectPaths, tts
) -> dict[Triple, str]:
    """Triples whose message cannot be built yet, with why (missing or stale stems).

    The same lookup the messages asset makes (:class:`CampaignStems`): by the signature the
    template and the TTS resource would produce now.
    """
    triples = list(dict.fromkeys(triples))
    if not triples:
        return {}
    campaign = CampaignStems(instance, paths, tts, rotation.templates)
    campaign.load(SegmentKind.NAME, {t[0] for t in triples})
    campaign.load(SegmentKind.DEVELOPER, {t[1] for t in triples})
    campaign.load(SegmentKind.SCRIPT, {t[2] for t in triples})
    problems: dict[Triple, str] = {}
    for triple in triples:
        name, dev, tid = triple
        tpl: Template = rotation.templates[tid]
        for seg in tpl.segments:
            # each render is called at once, in this iteration (the lambdas only defer a KeyError)
            owner, text = {
                SegmentKind.NAME: (name, lambda: seg.render(name=rotation.names[name])),  # noqa: B023
                SegmentKind.DEVELOPER: (dev, lambda: seg.render(developer=rotation.developers[dev])),  # noqa: B023
                SegmentKind.SCRIPT: (tid, lambda: seg.render()),  # noqa: B023
            }[seg.kind]
            try:
                campaign.resolve(seg.kind, owner, tpl, seg.id, text())
            except MissingStemError as exc:
                problems[triple] = str(exc)
                break
    return problems


def _default_tts(tts):
    if tts is not None:
        return tts
    from hybrid_audio_dagster.defs.resources.tts import tts_resource_from_env

    return tts_resource_from_env(os.environ)


def _registered(instance: dg.DagsterInstance) -> tuple[set[str], set[str]]:
    return (
        set(instance.get_dynamic_partitions(templates_partitions.name)),
        set(instance.get_dynamic_partitions(developers_partitions.name)),
    )


# --------------------------------------------------------------------------- ledger logic


def pending_entry(
    triple: Triple,
    *,
    reason: str,
    tick: str,
    attempts: int = 0,
    deferrals: int = 0,
    run_id: str | None = None,
    first_tick: str | None = None,
) -> dict[str, Any]:
    name, dev, tid = triple
    return {
        "name": name,
        "developer": dev,
        "template": tid,
        "reason": reason,
        "attempts": attempts,
        "deferrals": deferrals,
        "first_tick": first_tick or tick,
        "last_tick": tick,
        "last_run_id": run_id,
    }


def triple_of(entry: Mapping[str, Any]) -> Triple:
    return (entry["name"], entry["developer"], entry["template"])


def parse_time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def reconcile(
    instance: dg.DagsterInstance, ledger: dict[str, Any], *, now: datetime, settings: RotationSettings, tick: str
) -> dict[str, Any]:
    """Settle the outstanding requests of earlier ticks from their runs (mutates ``ledger``)."""
    outstanding = ledger["outstanding"]
    report: dict[str, Any] = {"succeeded": [], "failed": [], "not_launched": [], "waiting": 0}
    if not outstanding:
        return report
    seqs = sorted({str(o["batch_seq"]) for o in outstanding})
    runs = instance.get_runs(dg.RunsFilter(tags={BATCH_TAG: seqs}))
    by_request: dict[str, list[dg.DagsterRun]] = {}
    for run in runs:
        key = run.tags.get(REQUEST_TAG)
        if key:
            by_request.setdefault(key, []).append(run)
    pending = {triple_of(p): p for p in ledger["pending"]}
    keep: list[dict[str, Any]] = []
    for o in outstanding:
        found = by_request.get(o["run_key"], [])
        if any(r.status == dg.DagsterRunStatus.SUCCESS for r in found):
            report["succeeded"].append(o["run_key"])
            continue
        if any(r.status not in _DONE_BAD for r in found):
            report["waiting"] += 1
            keep.append(o)
            continue
        if found:
            run = found[0]  # get_runs lists the newest first
            reason = f"run {run.run_id[:8]} {run.status.value.lower()}"
            run_id: str | None = run.run_id
            report["failed"].append(o["run_key"])
        else:
            issued = parse_time(o.get("issued_at", ""))
            if issued is None or now - issued < timedelta(seconds=settings.launch_grace_s):
                report["waiting"] += 1
                keep.append(o)
                continue
            reason, run_id = "run never launched", None
            report["not_launched"].append(o["run_key"])
        for name in o["names"]:
            triple = (name, o["developer"], o["template"])
            prior = pending.get(triple)
            pending[triple] = pending_entry(
                triple,
                reason=reason,
                tick=tick,
                attempts=max(o["attempt"], prior["attempts"] if prior else 0),
                deferrals=prior["deferrals"] if prior else 0,
                run_id=run_id,
                first_tick=prior["first_tick"] if prior else o.get("tick"),
            )
    ledger["outstanding"] = keep
    # pairs that failed too often are given up on, visibly
    still: list[dict[str, Any]] = []
    for entry in pending.values():
        if entry["attempts"] >= settings.max_attempts:
            ledger["abandoned"].append({**entry, "reason": f"{entry['reason']}; gave up after {entry['attempts']} attempts"})
            report.setdefault("abandoned", []).append(list(triple_of(entry)))
        else:
            still.append(entry)
    ledger["pending"] = still
    return report


def plan_requests(
    instance: dg.DagsterInstance,
    rotation: Rotation,
    ledger: dict[str, Any],
    *,
    paths: ProjectPaths,
    tts=None,
    fresh: list[Triple],
    batch_seq: int,
    tick: str,
    issued_at: str,
    source: str,
    retry_pending: bool = True,
) -> tuple[list[PlannedRequest], list[dict[str, Any]], list[dict[str, Any]], int]:
    """Turn fresh triples (+ the pending ledger pairs if ``retry_pending``) into requests.

    Updates the ledger (outstanding, pending, abandoned); returns (requests, deferred,
    abandoned, retried).
    """
    fresh = list(dict.fromkeys(fresh))
    fresh_set = set(fresh)
    # (triple, attempt, prior ledger entry or None); a fresh pair also pending is run once, fresh
    candidates: list[tuple[Triple, int, dict[str, Any] | None]] = [(t, 1, None) for t in fresh]
    kept: list[dict[str, Any]] = []
    for p in ledger["pending"]:
        if triple_of(p) in fresh_set:
            continue
        if retry_pending:
            candidates.append((triple_of(p), p["attempts"] + 1, p))
        else:
            kept.append(p)
    templates_reg, devs_reg = _registered(instance)
    abandoned: list[dict[str, Any]] = []
    deferred: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    ready: list[tuple[Triple, int, dict[str, Any] | None]] = []
    checkable: list[tuple[Triple, int, dict[str, Any] | None]] = []
    for triple, attempt, prior in candidates:
        name, dev, tid = triple
        gone = [
            what
            for what, ok in (
                ("name", name in rotation.names),
                ("developer", dev in rotation.developers),
                ("template", tid in rotation.templates),
            )
            if not ok
        ]
        if gone:
            entry = prior or pending_entry(triple, reason="", tick=tick)
            abandoned.append({**entry, "reason": f"{', '.join(gone)} removed from the datasets", "last_tick": tick})
        elif tid not in templates_reg or dev not in devs_reg:
            entry = prior or pending_entry(triple, reason="", tick=tick)
            pending.append(
                {**entry, "reason": "partition not registered yet", "last_tick": tick, "deferrals": entry.get("deferrals", 0) + 1}
            )
            deferred.append({"name": name, "developer": dev, "template": tid, "reason": "partition not registered yet"})
        else:
            checkable.append((triple, attempt, prior))
    problems = stem_problems(instance, rotation, (t for t, _, _ in checkable), paths=paths, tts=_default_tts(tts))
    for triple, attempt, prior in checkable:
        problem = problems.get(triple)
        if problem is None:
            ready.append((triple, attempt, prior))
            continue
        entry = prior or pending_entry(triple, reason="", tick=tick)
        pending.append({**entry, "reason": f"stems not ready: {problem}", "last_tick": tick, "deferrals": entry.get("deferrals", 0) + 1})
        deferred.append({"name": triple[0], "developer": triple[1], "template": triple[2], "reason": problem})

    groups: dict[tuple[str, str, int], list[str]] = {}
    for (name, dev, tid), attempt, _ in ready:
        groups.setdefault((tid, dev, attempt), []).append(name)
    requests = [
        PlannedRequest(request_run_key(tick, tid, dev, attempt), tid, dev, tuple(names), attempt, batch_seq, tick)
        for (tid, dev, attempt), names in sorted(groups.items())
    ]
    for req in requests:
        ledger["outstanding"].append({**req.to_dict(), "issued_at": issued_at, "source": source})
    ledger["pending"] = kept + pending
    ledger["abandoned"].extend(abandoned)
    retried = sum(1 for _, _, prior in ready if prior is not None)
    return requests, deferred, abandoned, retried
