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

The pieces live in :mod:`.rotation_plan` (settings, planned requests, the tick plan, tags)
and :mod:`.rotation_ledger` (stems readiness, reconciling, planning); this module holds the
tick, the schedule and the CLI operations, and re-exports the names imported from here.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import dagster as dg

from hybrid_audio_dagster.assets.rotation import RetryLedger, open_rotation, rotation_seed
from hybrid_audio_dagster.resources.tts import TTSResource  # noqa: F401  (importable here as before the split)
from hybrid_audio_dagster.resources.paths import ProjectPaths
from hybrid_audio_dagster.rotation_ledger import (  # noqa: F401  (re-exported; stem_problems is not: patch it in rotation_ledger)
    _DONE_BAD,
    _parse_time,
    _pending_entry,
    _plan_requests,
    _triple,
    reconcile,
)
from hybrid_audio_dagster.rotation_plan import (  # noqa: F401  (re-exported)
    ATTEMPT_TAG,
    BATCH_ENV,
    BATCH_TAG,
    DEFAULT_BATCH_SIZE,
    REQUEST_TAG,
    TICK_TAG,
    TRIGGER_TAG,
    PlannedRequest,
    RotationSettings,
    TickPlan,
    Triple,
    _run_key,
    tick_key,
)

ROTATION_CRON = "0 9 * * *"
ROTATION_TIMEZONE = "UTC"
CRON_ENV = "HYBRID_AUDIO_ROTATION_CRON"
TZ_ENV = "HYBRID_AUDIO_ROTATION_TZ"


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
        rotation = open_rotation(paths, seed=settings.resolved_seed(), templates=settings.resolved_templates())
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
            "templates": settings.resolved_templates(),
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
