"""``rotation_outlook``: what the rotation hands out next, recorded so reads need no run.

Every run that moves the rotation or its inputs records it: the batch's datasets stage, a
rotation tick (``rotation_advance_job``) and ``generate-pair`` (its op logs the same
materialization). Its metadata is the rotation's status (as ``rotation_cycle`` records it),
the next ``OUTLOOK_PAIRS`` pairs and the next pair's script: the CLI's ``rotation status``,
``next-pair``, ``stream`` and ``next-script`` answer from it over GraphQL, and launch the
reading run only when an input was recorded after it (or it was never recorded). Reading
never advances anything.
"""

from typing import Any

import dagster as dg

from hybrid_audio_dagster.core.rotation.campaign import open_rotation
from hybrid_audio_dagster.core.rotation.errors import RotationError
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.rotation.assets import rotation_status_metadata
from hybrid_audio_dagster.defs.rotation.tick import preview_pairs

OUTLOOK = "rotation_outlook"
OUTLOOK_PAIRS = 100  # `rotation stream --limit N` past this asks a run
# what the outlook is computed from: a newer materialization of any of them makes it stale
OUTLOOK_INPUTS = ("suppression", "names_dataset", "developers_dataset", "message_templates", "rotation_advance")


def script_of(paths: ProjectPaths, pair: dict) -> list[dict]:
    """Every segment of ``pair``'s template as it will be spoken."""
    rotation = open_rotation(paths)
    tpl = rotation.templates[pair["template"]]
    return [
        {"segment": s.id, "kind": s.kind.value, "text": s.render(name=pair["name_display"], developer=pair["developer_display"])}
        for s in tpl.segments
    ]


def outlook_metadata(paths: ProjectPaths) -> dict[str, Any]:
    """The outlook's metadata; ``available: False`` (and why) before there is a rotation."""
    try:
        status = rotation_status_metadata(paths)
        pairs = preview_pairs(paths, OUTLOOK_PAIRS)
        script = script_of(paths, pairs[0]) if pairs else []
    except (FileNotFoundError, RotationError) as exc:
        return {"available": False, "problem": str(exc)}
    return {
        **status,
        "available": True,
        "next_pairs": dg.MetadataValue.json(pairs),
        "next_script": dg.MetadataValue.json(script),
    }


@dg.op(ins={"after": dg.In(dg.Nothing)}, description="Records what the rotation hands out next.")
def record_outlook(context: dg.OpExecutionContext, paths: ProjectPaths) -> None:
    """``rotation_advance_job``'s last step: the tick moved the rotation, so its outlook is recorded."""
    context.log_event(dg.AssetMaterialization(asset_key=OUTLOOK, metadata=outlook_metadata(paths)))


@dg.asset(group_name="rotation", kinds={"json"}, deps=list(OUTLOOK_INPUTS))
def rotation_outlook(paths: ProjectPaths) -> dg.MaterializeResult:
    """The rotation's status and the next pairs and script, as of this run (reads only; the
    CLI's rotation reads answer from it)."""
    return dg.MaterializeResult(metadata=outlook_metadata(paths))
