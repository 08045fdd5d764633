"""``rotation_advance``: one tick of the rotation, inside a run keyed by the tick.

A declared asset whose events only ``rotation_advance_job``'s op records, so no bulk
materialization in the UI ever hands out pairs.

The run hands out the next K pairs (idempotently per tick: a re-executed run replays the
same pairs), reconciles earlier requests with the retry ledger, and records the messages
runs to launch in its metadata; ``pipeline_sensor`` launches them and records the cycle's
``rotation_cycle`` partition. A cycle started by this tick becomes a new partition.
"""

from datetime import datetime

import dagster as dg

from hybrid_audio_dagster.core.rotation.campaign import open_rotation
from hybrid_audio_dagster.core.rotation.errors import RotationError
from hybrid_audio_dagster.defs.partitions import add_partitions, cycle_key, rotation_cycles_partitions
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import TTSResource
from hybrid_audio_dagster.defs.rotation.plan import RotationSettings
from hybrid_audio_dagster.defs.rotation.tick import evaluate_rotation_tick


class RotationAdvanceConfig(dg.Config):
    """The tick and the settings the schedule resolved for it."""

    tick: str
    batch_size: int
    seed: str
    templates: list[str] | None = None  # the scripts stream's template selection (None: the environment's)
    max_attempts: int = 5
    launch_grace_s: float = 3600.0


# Declared, not materialized by a function: the UI's "Materialize all" leaves it out (a bulk
# click must not hand out pairs); `rotation_advance_job`'s op records each tick.
rotation_advance = dg.AssetSpec(
    "rotation_advance",
    group_name="rotation",
    kinds={"json"},
    deps=["names_dataset", "developers_dataset", "message_templates"],
    description="The pairs one rotation tick handed out, and the messages runs that build them (recorded by "
    "`rotation_advance_job`, never by a bulk materialization).",
)


@dg.op(name="rotation_advance", description="One rotation tick: hands out the next pairs and plans their messages runs.")
def advance_rotation(context: dg.OpExecutionContext, config: RotationAdvanceConfig, paths: ProjectPaths, tts: TTSResource) -> None:
    """The pairs one rotation tick handed out, and the messages runs that build them."""
    settings = RotationSettings(
        batch_size=config.batch_size,
        seed=config.seed,
        max_attempts=config.max_attempts,
        launch_grace_s=config.launch_grace_s,
        templates=None if config.templates is None else tuple(config.templates),
    )
    try:
        plan = evaluate_rotation_tick(context.instance, paths, datetime.fromisoformat(config.tick), settings, log=context.log, tts=tts)
    except (FileNotFoundError, RotationError) as exc:
        raise dg.Failure(f"cannot advance the rotation: {exc}") from None
    status = open_rotation(paths, seed=config.seed, templates=settings.resolved_templates()).store.status()
    cycles = sorted(
        {
            cycle_key(c)
            for c in (plan.batch.get("cycle_before", status.cycle), plan.batch.get("cycle_after", status.cycle), status.cycle)
            if c is not None
        }
    )
    add_partitions(context.instance, rotation_cycles_partitions.name, cycles)
    context.log.info(plan.summary())
    run_auditor(context, paths)(
        "rotation_advance",
        tick=plan.tick,
        pairs=sum(len(r.names) for r in plan.requests),
        deferred=len(plan.deferred),
        replayed=plan.replayed,
    )
    context.log_event(
        dg.AssetMaterialization(
            asset_key=rotation_advance.key,
            metadata={
                "tick": plan.tick,
                "summary": plan.summary(),
                "cycles": dg.MetadataValue.json(cycles),
                "requests": dg.MetadataValue.json([r.to_dict() for r in plan.requests]),
                "pairs": sum(len(r.names) for r in plan.requests),
                "template_counts": dg.MetadataValue.json(_per_template(plan.requests)),  # per variant, for an A/B stream
                "deferred": len(plan.deferred),
                "abandoned": len(plan.abandoned),
                "retried": plan.retried,
                "replayed": plan.replayed,
            },
        )
    )


def _per_template(requests) -> dict[str, int]:
    """Pairs this tick's runs build, per template key (template or variant)."""
    out: dict[str, int] = {}
    for r in requests:
        out[r.template] = out.get(r.template, 0) + len(r.names)
    return dict(sorted(out.items()))
