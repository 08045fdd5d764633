"""``message_info_job`` (``hybrid-audio assemble`` and ``picture``): one message's path,
duration and bit-exact verification, and on request its timing picture (PNG, base64)."""

import base64
import hashlib
import json

import dagster as dg

from hybrid_audio_dagster.core.audio.assemble import Timeline, verify
from hybrid_audio_dagster.core.audio.errors import AudioError
from hybrid_audio_dagster.core.audio.wav import parse_wav
from hybrid_audio_dagster.core.datasets.snapshot import read_snapshot
from hybrid_audio_dagster.core.messages.manifest import manifest_path, read_manifest
from hybrid_audio_dagster.core.templates import load_templates
from hybrid_audio_dagster.defs.cli_result import cli_result, refused
from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths


class MessageInfoConfig(dg.Config):
    template: str
    developer: str
    name: str
    picture: bool = False


def verify_row(paths: ProjectPaths, row: dict) -> list[str]:
    """Problems of one manifest row's file (sha256, bit-exact join of its stems)."""
    try:
        data = (paths.output / row["path"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != row["sha256"]:
            return ["sha256 differs from the manifest"]
        raw = json.loads(row["timeline"])
        stems = {sha: (paths.stems / rel).read_bytes() for sha, rel in raw.pop("stem_paths").items()}
        verify(parse_wav(data, row["path"]), stems, Timeline.from_dict(raw), row["path"])
    except (AudioError, OSError, KeyError, ValueError) as exc:
        return [str(exc)]
    return []


def describe_row(paths: ProjectPaths, row: dict, gcs: DeliveryResource) -> dict:
    """One message as ``message_info`` answers it (no picture): path, duration, the bit-exact
    verification, its timeline and its ``gs://`` URI when delivered."""
    problems = verify_row(paths, row)
    out = {
        "path": str(paths.output / row["path"]),
        "relpath": row["path"],
        "duration_s": round(row["duration_s"], 3),
        "frames": row["frames"],
        "sample_rate": row["sample_rate"],
        "sha256": row["sha256"],
        "verified": not problems,
        "problems": problems,
        "timeline": json.loads(row["timeline"]),
        "uri": None,
    }
    if gcs.enabled:  # the delivered copy, when the bucket has it
        obj = gcs.layout.output_object(row["path"])
        out["uri"] = gcs.uri(obj) if gcs.exists(obj) else None
    return out


@dg.op(description="One message: its path, duration, verification and (on request) its timing picture.")
def message_info(context: dg.OpExecutionContext, config: MessageInfoConfig, paths: ProjectPaths, gcs: DeliveryResource) -> dg.Output[dict]:
    rows = {r["name_key"]: r for r in read_manifest(manifest_path(paths.output, config.template, config.developer))}
    row = rows.get(config.name)
    if row is None:
        raise refused(
            f"no message for {config.name!r} in {config.template}/{config.developer}: run `hybrid-audio assemble` first",
            problem="no_message",
        )
    out = describe_row(paths, row, gcs)
    if config.picture:
        from hybrid_audio_dagster.core.messages.picture import picture_of_row, segment_labels

        tpl = load_templates(paths.templates).get(config.template)
        dev = read_snapshot(paths, "developers").get(config.developer, config.developer)
        labels = segment_labels(tpl, row["name"], dev) if tpl else None
        out["png_b64"] = base64.b64encode(picture_of_row(paths.output, paths.stems, row, labels=labels).png).decode("ascii")
    return cli_result(out)


@dg.job(description="Reads one message's manifest row, verifies it bit-exactly, draws its timing on request.")
def message_info_job() -> None:
    message_info()
