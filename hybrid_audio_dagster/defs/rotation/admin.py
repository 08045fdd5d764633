"""``rotation_admin_job``: the rotation's CLI operations as one thin op over the rotation
code's own functions (``rotation_status_metadata``, ``preview_pairs``, ``generate_next_pair``).

``generate-pair`` advances the rotation by one pair (audited) and returns the messages run
that builds it; the CLI launches that run (the pair stays in the retry ledger until it
succeeds). Nothing else here writes.
"""

import dagster as dg

from hybrid_audio_dagster.defs.cli_result import cli_result, refused
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import TTSResource
from hybrid_audio_dagster.defs.rotation.assets import rotation_status_metadata
from hybrid_audio_dagster.defs.rotation.outlook import OUTLOOK, outlook_metadata, script_of
from hybrid_audio_dagster.defs.rotation.tick import generate_next_pair, preview_pairs

ACTIONS = ("status", "next-pair", "stream", "generate-pair", "next-script")


class RotationAdminConfig(dg.Config):
    action: str
    limit: int = 10  # stream: pairs to show
    request_id: str = ""  # generate-pair: the same id gives the same pair back


def plain_metadata(md: dict) -> dict:
    return {k: (v.value if isinstance(v, dg.MetadataValue) else v) for k, v in md.items()}


@dg.op(description="Rotation status, the next pair(s) or script (no advance), or one generated pair (advances).")
def rotation_admin(context: dg.OpExecutionContext, config: RotationAdminConfig, paths: ProjectPaths, tts: TTSResource) -> dg.Output[dict]:
    if config.action not in ACTIONS:
        raise refused(f"unknown action {config.action!r} ({', '.join(ACTIONS)})", problem="unknown_action")
    try:
        if config.action == "status":
            out = plain_metadata(rotation_status_metadata(paths))
        elif config.action in ("next-pair", "next-script"):
            [pair] = preview_pairs(paths, 1)
            out = {"pair": pair, **({"script": script_of(paths, pair)} if config.action == "next-script" else {})}
        elif config.action == "stream":
            out = {"pairs": preview_pairs(paths, max(1, min(config.limit, 1000)))}
        else:
            pair = generate_next_pair(context.instance, paths, request_id=config.request_id or None, actor="cli", tts=tts)
            out = {
                "name": pair.name,
                "developer": pair.developer,
                "template": pair.template,
                "ready": pair.ready,
                "problem": pair.problem,
                "run": {"job": pair.job_name, "partition": str(pair.partition_key), "run_config": pair.run_config, "tags": pair.tags},
            }
            run_auditor(context, paths)(
                "rotation_advance", pairs=1, name=pair.name, developer=pair.developer, template=pair.template, ready=pair.ready
            )
            # the rotation moved: record what it hands out next, so reads stay runless
            context.log_event(dg.AssetMaterialization(asset_key=OUTLOOK, metadata=outlook_metadata(paths)))
    except FileNotFoundError as exc:
        raise dg.Failure(f"no rotation yet: {exc}") from None
    return cli_result(out)


@dg.job(description="The rotation's CLI operations (`hybrid-audio rotation …`).")
def rotation_admin_job() -> None:
    rotation_admin()
