"""Asset checks on the messages: every file re-verified bit-exactly against its stems."""

import hashlib
import json
import warnings

import dagster as dg

from hybrid_audio_dagster.core.audio.assemble import Timeline, verify
from hybrid_audio_dagster.core.audio.errors import AudioError
from hybrid_audio_dagster.core.audio.wav import longest_full_scale_run, parse_wav
from hybrid_audio_dagster.core.messages.manifest import manifest_path, read_manifest
from hybrid_audio_dagster.defs.partitions import message_partition_dims, messages_partitions
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths

BIT_EXACT_CHECK = "bit_exact"

with warnings.catch_warnings():
    # per-partition check specs are a preview feature in Dagster 1.13
    warnings.simplefilter("ignore")
    _SPEC = dg.AssetCheckSpec(
        BIT_EXACT_CHECK,
        asset="messages",
        partitions_def=messages_partitions,
        description="Each message in the manifest hashes as recorded, is a bit-exact join of its stems "
        "per its timeline, has the stems' format and no clipped run.",
    )


def verify_partition(paths: ProjectPaths, template_id: str, developer_key: str) -> tuple[int, list[str]]:
    """Verify every message of a partition; return (checked, problems)."""
    problems: list[str] = []
    rows = read_manifest(manifest_path(paths.output, template_id, developer_key))
    stem_bytes: dict[str, bytes] = {}
    for row in rows:
        where = row["path"]
        try:
            data = (paths.output / row["path"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != row["sha256"]:
                problems.append(f"{where}: sha256 differs from the manifest")
                continue
            tl_raw = json.loads(row["timeline"])
            stem_paths = tl_raw.pop("stem_paths")
            timeline = Timeline.from_dict(tl_raw)
            for sha, rel in stem_paths.items():
                if sha not in stem_bytes:
                    stem_bytes[sha] = (paths.stems / rel).read_bytes()
            message = parse_wav(data, where)
            verify(message, stem_bytes, timeline, where)
            if longest_full_scale_run(message) > 2:
                problems.append(f"{where}: clipped")
        except (AudioError, OSError, KeyError, ValueError) as exc:
            problems.append(f"{where}: {exc}")
    return len(rows), problems


@dg.multi_asset_check(specs=[_SPEC], can_subset=True)
def messages_bit_exact(context: dg.AssetCheckExecutionContext, paths: ProjectPaths):
    for key in context.partition_keys:
        template_id, developer_key = message_partition_dims(key)
        checked, problems = verify_partition(paths, template_id, developer_key)
        yield dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("messages"),
            check_name=BIT_EXACT_CHECK,
            passed=not problems and checked > 0,
            partition=str(key),
            metadata={
                "checked": checked,
                "problems": len(problems),
                "first_problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:20]) or "none"),
            },
        )
