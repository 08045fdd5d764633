"""The rotation schedule: each tick takes the next K pairs and launches their messages.

``rotation_schedule`` (STOPPED by default; start it in the UI or with
``dagster schedule start rotation_schedule``) runs at :data:`ROTATION_CRON` (09:00) in
:data:`ROTATION_TIMEZONE` (UTC); ``HYBRID_AUDIO_ROTATION_CRON`` / ``HYBRID_AUDIO_ROTATION_TZ``
change them when the code location loads. ``HYBRID_AUDIO_ROTATION_BATCH`` (K, default 50)
and ``HYBRID_AUDIO_ROTATION_SEED`` are read at each tick.

One tick (:func:`evaluate_rotation_tick`), under the retry ledger's lock:

1. **Replay.** If this tick (its scheduled time) was already evaluated, return the plan it
   returned then: same run keys, nothing advanced. (If a crash lost the plan after the
   advance committed, the store replays the batch of the same ``run_key_basis``.)
2. **Reconcile.** Look at the runs launched by earlier ticks (``instance.get_runs`` by the
   ``hybrid_audio/rotation_batch`` tag, matched on ``hybrid_audio/rotation_request``): a
   success settles its pairs; a failed or cancelled run puts its pairs back in the ledger
   (``attempts`` + 1; after ``max_attempts`` they are *abandoned*, still reported); a
   request with no run at all ``launch_grace_s`` after it was issued counts as a failed
   attempt too ("never launched"). Runs still queued or running are left alone.
3. **Advance** the rotation once: ``store.advance(K, run_key_basis="rotation_schedule:<tick>",
   script_mode="pair")`` — every pair gets a template from the scripts stream.
4. **Plan.** Candidates are this batch plus every pending ledger pair. A pair whose name,
   developer or template left the datasets is abandoned (reported). A pair whose stems are
   not materialized (or are stale) is **deferred**: kept pending and retried at the next
   tick. Stems are not requested from here: run requests of one tick have no order, so a
   messages run could start before the stems run it needs; stems come from the inbox
   sensor and the nightly batch. The ready pairs are grouped by (template, developer,
   attempt) into one ``messages_job`` run each, partition ``template × developer``, run
   config ``names: [...]``, run key ``rotation:<tick>:<template>:<developer>`` (attempt
   1) or ``...:attempt<n>`` (retries), tagged with the batch seq.
   The batch's pairs are staged in the ledger (pending) right after the advance, so an
   error while planning loses nothing: the next tick launches them.
5. **Commit** the ledger (atomic) with the plan, then return the run requests.

The advance happens once per tick whatever the runs do; failed pairs come back through the
ledger, never silently dropped. The ``rotation_cycle`` asset shows the ledger.

Cost: one run per (template, developer) group; Dagster's bookkeeping is ~0.2 s per run on
sqlite, so K=50 over many developers is tens of short runs per tick (serialised by the
``messages`` pool). They are small: each touches one partition and only its batch names.

For the CLI: :func:`generate_next_pair` (advance one pair, get the run to submit) and
:func:`preview_pairs`.
"""

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import dagster as dg

from .assets.rotation import Rotation, RetryLedger, open_rotation, rotation_seed
from .assets.stems import CampaignStems, MissingStemError
from .core.templates import SegmentKind, Template
from .automation.stages import MESSAGES_JOB
from .resources.tts import TTSResource
from .partitions import developers_partitions, message_partition_key, templates_partitions
from .resources.paths import ProjectPaths

ROTATION_CRON = "0 9 * * *"
ROTATION_TIMEZONE = "UTC"
DEFAULT_BATCH_SIZE = 50
CRON_ENV = "HYBRID_AUDIO_ROTATION_CRON"
TZ_ENV = "HYBRID_AUDIO_ROTATION_TZ"
BATCH_ENV = "HYBRID_AUDIO_ROTATION_BATCH"

TRIGGER_TAG = "hybrid_audio/trigger"
BATCH_TAG = "hybrid_audio/rotation_batch"  # seq of the rotation batch of the tick
TICK_TAG = "hybrid_audio/rotation_tick"  # the tick (UTC ISO) or the CLI call time
REQUEST_TAG = "hybrid_audio/rotation_request"  # the request's run key: matches runs to ledger entries
ATTEMPT_TAG = "hybrid_audio/rotation_attempt"

_DONE_BAD = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}

Triple = tuple[str, str, str]  # (name, developer, template)


@dataclass(frozen=True)
class RotationSettings:
    """Tunables of a rotation tick.

    Attributes:
        batch_size: pairs per tick (K); None reads ``HYBRID_AUDIO_ROTATION_BATCH`` (default 50).
        seed: the rotation seed; None reads ``HYBRID_AUDIO_ROTATION_SEED`` (default constant).
        max_attempts: failed runs after which a pair is abandoned (reported, not retried).
        launch_grace_s: a request without any run this long after it was issued is
            treated as a failed attempt ("never launched").
    """

    batch_size: int | None = None
    seed: str | None = None
    max_attempts: int = 5
    launch_grace_s: float = 3600.0

    def resolved_batch_size(self, env: Mapping[str, str] | None = None) -> int:
        if self.batch_size is not None:
            k = self.batch_size
        else:
            env = os.environ if env is None else env
            raw = env.get(BATCH_ENV) or str(DEFAULT_BATCH_SIZE)
            try:
                k = int(raw)
            except ValueError:
                raise ValueError(f"{BATCH_ENV} must be a positive integer, got {raw!r}") from None
        if isinstance(k, bool) or k < 1:
            raise ValueError(f"the rotation batch size must be a positive integer, got {k!r}")
        return k

    def resolved_seed(self) -> str:
        return rotation_seed() if self.seed is None else self.seed


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class PlannedRequest:
    """One messages run of a tick: a template × developer partition, restricted to ``names``."""

    run_key: str
    template: str
    developer: str
    names: tuple[str, ...]
    attempt: int
    batch_seq: int
    tick: str

    @property
    def job_name(self) -> str:
        return MESSAGES_JOB

    @property
    def partition_key(self) -> str:
        return str(message_partition_key(self.template, self.developer))

    @property
    def run_config(self) -> dict[str, Any]:
        return {"ops": {"messages": {"config": {"names": list(self.names), "force": False}}}}

    @property
    def tags(self) -> dict[str, str]:
        return {
            TRIGGER_TAG: "rotation",
            BATCH_TAG: str(self.batch_seq),
            TICK_TAG: self.tick,
            REQUEST_TAG: self.run_key,
            ATTEMPT_TAG: str(self.attempt),
        }

    def to_run_request(self) -> dg.RunRequest:
        return dg.RunRequest(
            run_key=self.run_key,
            job_name=self.job_name,
            partition_key=message_partition_key(self.template, self.developer),
            run_config=self.run_config,
            tags=self.tags,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_key": self.run_key, "template": self.template, "developer": self.developer,
            "names": list(self.names), "attempt": self.attempt, "batch_seq": self.batch_seq, "tick": self.tick,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PlannedRequest":
        return cls(d["run_key"], d["template"], d["developer"], tuple(d["names"]), d["attempt"], d["batch_seq"], d["tick"])


@dataclass
class TickPlan:
    """What one tick decided (stored in the ledger; a re-evaluation returns it again)."""

    tick: str
    batch: dict[str, Any]  # seq, cycle/cursor before and after, count, skipped, replayed
    requests: list[PlannedRequest]
    deferred: list[dict[str, Any]] = field(default_factory=list)  # pairs waiting for stems
    retried: int = 0  # ledger pairs included in this tick's requests
    abandoned: list[dict[str, Any]] = field(default_factory=list)  # given up this tick
    reconciled: dict[str, Any] = field(default_factory=dict)  # outcome of earlier requests
    replayed: bool = False  # True when the tick had been evaluated before

    @property
    def run_keys(self) -> list[str]:
        return [r.run_key for r in self.requests]

    def run_requests(self) -> list[dg.RunRequest]:
        return [r.to_run_request() for r in self.requests]

    def summary(self) -> str:
        b = self.batch
        pairs = sum(len(r.names) for r in self.requests)
        text = (
            f"tick {self.tick}: batch {b.get('seq')} ({b.get('count')} pairs, cycle {b.get('cycle_after')} at "
            f"{b.get('cursor_after')}/{b.get('cycle_length')}); {len(self.requests)} run(s) for {pairs} pair(s), "
            f"{self.retried} retried, {len(self.deferred)} deferred (stems missing), {len(self.abandoned)} abandoned"
        )
        return text + (" [replayed]" if self.replayed else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "tick": self.tick, "batch": self.batch, "requests": [r.to_dict() for r in self.requests],
            "deferred": self.deferred, "retried": self.retried, "abandoned": self.abandoned,
            "reconciled": self.reconciled,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, replayed: bool = False) -> "TickPlan":
        return cls(
            tick=d["tick"], batch=d["batch"], requests=[PlannedRequest.from_dict(r) for r in d["requests"]],
            deferred=list(d.get("deferred", [])), retried=d.get("retried", 0), abandoned=list(d.get("abandoned", [])),
            reconciled=dict(d.get("reconciled", {})), replayed=replayed,
        )


def tick_key(when: datetime) -> str:
    """The tick's identity: its scheduled time in UTC, ISO 8601 (naive times are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


def _run_key(tick: str, template: str, developer: str, attempt: int) -> str:
    base = f"rotation:{tick}:{template}:{developer}"
    return base if attempt <= 1 else f"{base}:attempt{attempt}"


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
            owner, text = {
                SegmentKind.NAME: (name, lambda: seg.render(name=rotation.names[name])),
                SegmentKind.DEVELOPER: (dev, lambda: seg.render(developer=rotation.developers[dev])),
                SegmentKind.SCRIPT: (tid, lambda: seg.render()),
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
    from .resources.tts import tts_resource_from_env

    return tts_resource_from_env(os.environ)


def _registered(instance: dg.DagsterInstance) -> tuple[set[str], set[str]]:
    return (
        set(instance.get_dynamic_partitions(templates_partitions.name)),
        set(instance.get_dynamic_partitions(developers_partitions.name)),
    )


# --------------------------------------------------------------------------- ledger logic


def _pending_entry(triple: Triple, *, reason: str, tick: str, attempts: int = 0, deferrals: int = 0,
                   run_id: str | None = None, first_tick: str | None = None) -> dict[str, Any]:
    name, dev, tid = triple
    return {
        "name": name, "developer": dev, "template": tid, "reason": reason, "attempts": attempts,
        "deferrals": deferrals, "first_tick": first_tick or tick, "last_tick": tick, "last_run_id": run_id,
    }


def _triple(entry: Mapping[str, Any]) -> Triple:
    return (entry["name"], entry["developer"], entry["template"])


def _parse_time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


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
    pending = {_triple(p): p for p in ledger["pending"]}
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
            issued = _parse_time(o.get("issued_at", ""))
            if issued is None or now - issued < timedelta(seconds=settings.launch_grace_s):
                report["waiting"] += 1
                keep.append(o)
                continue
            reason, run_id = "run never launched", None
            report["not_launched"].append(o["run_key"])
        for name in o["names"]:
            triple = (name, o["developer"], o["template"])
            prior = pending.get(triple)
            pending[triple] = _pending_entry(
                triple, reason=reason, tick=tick, attempts=max(o["attempt"], prior["attempts"] if prior else 0),
                deferrals=prior["deferrals"] if prior else 0, run_id=run_id,
                first_tick=prior["first_tick"] if prior else o.get("tick"),
            )
    ledger["outstanding"] = keep
    # pairs that failed too often are given up on, visibly
    still: list[dict[str, Any]] = []
    for entry in pending.values():
        if entry["attempts"] >= settings.max_attempts:
            ledger["abandoned"].append({**entry, "reason": f"{entry['reason']}; gave up after {entry['attempts']} attempts"})
            report.setdefault("abandoned", []).append(list(_triple(entry)))
        else:
            still.append(entry)
    ledger["pending"] = still
    return report


def _plan_requests(
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
        if _triple(p) in fresh_set:
            continue
        if retry_pending:
            candidates.append((_triple(p), p["attempts"] + 1, p))
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
        gone = [what for what, ok in (("name", name in rotation.names), ("developer", dev in rotation.developers),
                                       ("template", tid in rotation.templates)) if not ok]
        if gone:
            entry = prior or _pending_entry(triple, reason="", tick=tick)
            abandoned.append({**entry, "reason": f"{', '.join(gone)} removed from the datasets", "last_tick": tick})
        elif tid not in templates_reg or dev not in devs_reg:
            entry = prior or _pending_entry(triple, reason="", tick=tick)
            pending.append({**entry, "reason": "partition not registered yet", "last_tick": tick,
                            "deferrals": entry.get("deferrals", 0) + 1})
            deferred.append({"name": name, "developer": dev, "template": tid, "reason": "partition not registered yet"})
        else:
            checkable.append((triple, attempt, prior))
    problems = stem_problems(instance, rotation, (t for t, _, _ in checkable), paths=paths, tts=_default_tts(tts))
    for triple, attempt, prior in checkable:
        problem = problems.get(triple)
        if problem is None:
            ready.append((triple, attempt, prior))
            continue
        entry = prior or _pending_entry(triple, reason="", tick=tick)
        pending.append({**entry, "reason": f"stems not ready: {problem}", "last_tick": tick,
                        "deferrals": entry.get("deferrals", 0) + 1})
        deferred.append({"name": triple[0], "developer": triple[1], "template": triple[2], "reason": problem})

    groups: dict[tuple[str, str, int], list[str]] = {}
    for (name, dev, tid), attempt, _ in ready:
        groups.setdefault((tid, dev, attempt), []).append(name)
    requests = [
        PlannedRequest(_run_key(tick, tid, dev, attempt), tid, dev, tuple(names), attempt, batch_seq, tick)
        for (tid, dev, attempt), names in sorted(groups.items())
    ]
    for req in requests:
        ledger["outstanding"].append({**req.to_dict(), "issued_at": issued_at, "source": source})
    ledger["pending"] = kept + pending
    ledger["abandoned"].extend(abandoned)
    retried = sum(1 for _, _, prior in ready if prior is not None)
    return requests, deferred, abandoned, retried


# --------------------------------------------------------------------------- the tick


def evaluate_rotation_tick(
    instance: dg.DagsterInstance,
    paths: ProjectPaths,
    when: datetime,
    settings: RotationSettings = RotationSettings(),
    *,
    log: Any = None,
    tts=None,
) -> TickPlan:
    """One rotation tick (see the module docstring); idempotent per ``when``."""
    tick = tick_key(when)
    ledger_store = RetryLedger.for_paths(paths)
    with ledger_store.transaction() as ledger:
        for key, stored in ledger["ticks"]:
            if key == tick:
                plan = TickPlan.from_dict(stored, replayed=True)
                _log(log, plan)
                return plan
        now = _parse_time(tick) or datetime.now(timezone.utc)
        reconciled = reconcile(instance, ledger, now=now, settings=settings, tick=tick)
        rotation = open_rotation(paths, seed=settings.resolved_seed())
        batch = rotation.store.advance(
            settings.resolved_batch_size(), run_key_basis=f"rotation_schedule:{tick}", script_mode="pair",
            actor="rotation_schedule",
        )
        fresh = [(a.name, a.developer, a.script) for a in batch.items if a.script is not None]
        # stage the handed-out pairs before planning: if anything below fails (or the
        # process dies), they are pending in the ledger and a later tick launches them
        staged = {_triple(p) for p in ledger["pending"]}
        ledger["pending"] += [
            _pending_entry(t, reason=f"handed out by tick {tick}, not launched yet", tick=tick)
            for t in dict.fromkeys(fresh) if t not in staged
        ]
        ledger_store.checkpoint(ledger)
        requests, deferred, abandoned, retried = _plan_requests(
            instance, rotation, ledger, fresh=fresh, batch_seq=batch.seq, tick=tick, issued_at=tick, source="schedule",
            paths=paths, tts=tts,
        )
        summary = {k: v for k, v in batch.to_dict().items() if k != "items"}
        plan = TickPlan(tick, summary, requests, deferred, retried, abandoned, reconciled)
        ledger["ticks"].append([tick, plan.to_dict()])
    _log(log, plan)
    return plan


def _log(log: Any, plan: TickPlan) -> None:
    if log is None:
        return
    log.info(plan.summary())
    rec = plan.reconciled
    if rec.get("failed") or rec.get("not_launched"):
        log.warning(f"earlier runs to retry: failed {rec.get('failed', [])}, never launched {rec.get('not_launched', [])}")
    for d in plan.deferred[:20]:
        log.warning(f"deferred {d['name']} × {d['developer']} ({d['template']}): {d['reason']}")
    if len(plan.deferred) > 20:
        log.warning(f"… and {len(plan.deferred) - 20} more deferred pairs (see the rotation_cycle asset)")
    for a in plan.abandoned[:20]:
        log.warning(f"abandoned {a['name']} × {a['developer']} ({a['template']}): {a['reason']}")


def build_rotation_schedule(
    cron_schedule: str = ROTATION_CRON,
    *,
    execution_timezone: str = ROTATION_TIMEZONE,
    name: str = "rotation_schedule",
    settings: RotationSettings = RotationSettings(),
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.ScheduleDefinition:
    """A schedule asking, per tick, for one ``rotation_advance_job`` run keyed by the tick.

    The tick only decides: the run advances the rotation (idempotently per tick), records
    the pairs it handed out, and ``pipeline_sensor`` then asks for their messages runs and a
    record of the cycle's ``rotation_cycle`` partition.
    """

    @dg.schedule(
        name=name,
        job_name=ADVANCE_JOB,
        cron_schedule=cron_schedule,
        execution_timezone=execution_timezone,
        default_status=default_status,
        description="Takes the next K name × developer pairs of the rotation (in a run keyed by the tick) and has "
        "their messages built; failed or deferred pairs are retried on later ticks.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        when = context.scheduled_execution_time or datetime.now(timezone.utc).replace(second=0, microsecond=0)
        return advance_request(when, settings)

    return _schedule


ADVANCE_JOB = "rotation_advance_job"


def advance_request(when: datetime, settings: RotationSettings = RotationSettings()) -> dg.RunRequest:
    """The run that advances the rotation for tick ``when`` (settings resolved now, so a
    re-evaluated tick asks for exactly the same run)."""
    tick = tick_key(when)
    pipeline = f"rotation-{tick}"
    return dg.RunRequest(
        run_key=f"rotation:{tick}",
        job_name=ADVANCE_JOB,
        run_config={"ops": {"rotation_advance": {"config": {
            "tick": tick, "batch_size": settings.resolved_batch_size(), "seed": settings.resolved_seed(),
            "max_attempts": settings.max_attempts, "launch_grace_s": settings.launch_grace_s,
        }}}},
        tags={"hybrid_audio/pipeline": pipeline, "hybrid_audio/stage": "advance", "hybrid_audio/driver": "daemon",
              "hybrid_audio/scope": "rotation", TRIGGER_TAG: "rotation", TICK_TAG: tick},
    )


def rotation_schedule_from_env(env: Mapping[str, str] | None = None) -> dg.ScheduleDefinition:
    env = os.environ if env is None else env
    return build_rotation_schedule(env.get(CRON_ENV) or ROTATION_CRON, execution_timezone=env.get(TZ_ENV) or ROTATION_TIMEZONE)


rotation_schedule = rotation_schedule_from_env()


# --------------------------------------------------------------------------- CLI operations


@dataclass(frozen=True)
class PairRequest:
    """The run that materializes one generated pair (what a caller submits)."""

    name: str
    developer: str
    template: str
    request: PlannedRequest
    ready: bool  # False: stems missing; the pair was put in the retry ledger instead
    problem: str | None = None

    @property
    def job_name(self) -> str:
        return self.request.job_name

    @property
    def partition_key(self) -> str:
        return self.request.partition_key

    @property
    def run_config(self) -> dict[str, Any]:
        return self.request.run_config

    @property
    def tags(self) -> dict[str, str]:
        return self.request.tags

    @property
    def run_key(self) -> str:
        return self.request.run_key

    def to_run_request(self) -> dg.RunRequest:
        return self.request.to_run_request()


def generate_next_pair(
    instance: dg.DagsterInstance,
    paths: ProjectPaths,
    *,
    seed: str | None = None,
    request_id: str | None = None,
    actor: str = "cli",
    tts=None,
) -> PairRequest:
    """Advance the rotation by one pair and return the messages run that makes it.

    The pair is recorded in the retry ledger as outstanding, so the schedule retries it if
    the caller's run fails (or is never submitted within the launch grace). When its stems
    are missing the pair is deferred to the ledger and ``ready`` is False: submitting the
    run would fail. ``request_id`` makes a retried call idempotent (same pair back).
    """
    issued = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    with RetryLedger.for_paths(paths).transaction() as ledger:
        rotation = open_rotation(paths, seed=rotation_seed() if seed is None else seed)
        basis = f"pair:{request_id}" if request_id else None
        batch = rotation.store.advance(1, run_key_basis=basis, script_mode="pair", actor=actor)
        a = batch.items[0]
        triple = (a.name, a.developer, a.script or "")
        tick = f"pair-{batch.seq}"
        if batch.replayed:
            # an idempotent retry of the call: the same pair and run, the ledger untouched
            request = next(
                (PlannedRequest.from_dict(o) for o in ledger["outstanding"] if o["tick"] == tick),
                PlannedRequest(_run_key(tick, triple[2], a.developer, 1), triple[2], a.developer, (a.name,), 1, batch.seq, tick),
            )
            waiting = next((p for p in ledger["pending"] if _triple(p) == triple), None)
            if waiting is not None and not any(o["tick"] == tick for o in ledger["outstanding"]):
                return PairRequest(a.name, a.developer, triple[2], request, False, waiting["reason"])
            return PairRequest(a.name, a.developer, triple[2], request, True)
        requests, deferred, abandoned, _ = _plan_requests(
            instance, rotation, ledger, fresh=[triple], batch_seq=batch.seq, tick=tick, issued_at=issued,
            source=actor, retry_pending=False, paths=paths, tts=tts,
        )
        if requests:
            return PairRequest(a.name, a.developer, triple[2], requests[0], True)
        request = PlannedRequest(_run_key(tick, triple[2], a.developer, 1), triple[2], a.developer, (a.name,), 1, batch.seq, tick)
        problem = deferred[0]["reason"] if deferred else abandoned[0]["reason"]
        return PairRequest(a.name, a.developer, triple[2], request, False, problem)


def preview_pairs(paths: ProjectPaths, n: int = 20, *, seed: str | None = None) -> list[dict[str, Any]]:
    """The next ``n`` pairs (with display names and templates) without advancing anything."""
    return open_rotation(paths, seed=seed).preview(n)
