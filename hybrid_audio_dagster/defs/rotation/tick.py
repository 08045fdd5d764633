"""One rotation tick, run inside ``rotation_advance``: replay, reconcile, advance, plan,
commit (see :func:`evaluate_rotation_tick`), and the CLI's one-pair operations
(:func:`generate_next_pair`, :func:`preview_pairs`).

One tick, under the retry ledger's lock:

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
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from hybrid_audio_dagster.core.rotation.campaign import open_rotation, rotation_seed
from hybrid_audio_dagster.core.rotation.retry_ledger import RetryLedger
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.rotation.plan import PlannedRequest, RotationSettings, TickPlan, request_run_key, tick_key
from hybrid_audio_dagster.defs.rotation.reconcile import (
    parse_time,
    pending_entry,
    plan_requests,
    reconcile,
    triple_of,
)


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
        now = parse_time(tick) or datetime.now(UTC)
        reconciled = reconcile(instance, ledger, now=now, settings=settings, tick=tick)
        rotation = open_rotation(paths, seed=settings.resolved_seed(), templates=settings.resolved_templates())
        batch = rotation.store.advance(
            settings.resolved_batch_size(),
            run_key_basis=f"rotation_schedule:{tick}",
            script_mode="pair",
            actor="rotation_schedule",
        )
        fresh = [(a.name, a.developer, a.script) for a in batch.items if a.script is not None]
        # stage the handed-out pairs before planning: if anything below fails (or the
        # process dies), they are pending in the ledger and a later tick launches them
        staged = {triple_of(p) for p in ledger["pending"]}
        ledger["pending"] += [
            pending_entry(t, reason=f"handed out by tick {tick}, not launched yet", tick=tick)
            for t in dict.fromkeys(fresh)
            if t not in staged
        ]
        ledger_store.checkpoint(ledger)
        requests, deferred, abandoned, retried = plan_requests(
            instance,
            rotation,
            ledger,
            fresh=fresh,
            batch_seq=batch.seq,
            tick=tick,
            issued_at=tick,
            source="schedule",
            paths=paths,
            tts=tts,
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
    issued = datetime.now(UTC).replace(microsecond=0).isoformat()
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
                PlannedRequest(request_run_key(tick, triple[2], a.developer, 1), triple[2], a.developer, (a.name,), 1, batch.seq, tick),
            )
            waiting = next((p for p in ledger["pending"] if triple_of(p) == triple), None)
            if waiting is not None and not any(o["tick"] == tick for o in ledger["outstanding"]):
                return PairRequest(a.name, a.developer, triple[2], request, False, waiting["reason"])
            return PairRequest(a.name, a.developer, triple[2], request, True)
        requests, deferred, abandoned, _ = plan_requests(
            instance,
            rotation,
            ledger,
            fresh=[triple],
            batch_seq=batch.seq,
            tick=tick,
            issued_at=issued,
            source=actor,
            retry_pending=False,
            paths=paths,
            tts=tts,
        )
        if requests:
            return PairRequest(a.name, a.developer, triple[2], requests[0], True)
        request = PlannedRequest(request_run_key(tick, triple[2], a.developer, 1), triple[2], a.developer, (a.name,), 1, batch.seq, tick)
        problem = deferred[0]["reason"] if deferred else abandoned[0]["reason"]
        return PairRequest(a.name, a.developer, triple[2], request, False, problem)


def preview_pairs(paths: ProjectPaths, n: int = 20, *, seed: str | None = None) -> list[dict[str, Any]]:
    """The next ``n`` pairs (with display names and templates) without advancing anything."""
    return open_rotation(paths, seed=seed).preview(n)
