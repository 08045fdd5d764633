"""Small op jobs behind the ``hybrid-audio`` CLI: each reads or changes the project's files
inside a run (so the CLI needs nothing but the webserver) and returns what it did as its
output's metadata ``result`` (JSON), which the CLI reads over GraphQL.

* ``invalidate_stems_job``: tombstones stems by signature (prefix) so the next stems run
  re-synthesizes exactly them (:meth:`StemStore.invalidate`); audited.
* ``message_info_job``: one message's path, duration and bit-exact verification, and on
  request its timing picture (PNG, base64).
* ``datasets_admin_job``: list / preview / delete of dataset files (uploads go through
  ``ingest_job`` with the bytes in run config).
"""

import base64
import binascii
import hashlib
import json

import dagster as dg

from hybrid_audio_dagster import dataset_admin
from hybrid_audio_dagster.audit_context import run_auditor
from hybrid_audio_dagster.core.audio.assemble import Timeline, verify
from hybrid_audio_dagster.core.audio.errors import AudioError
from hybrid_audio_dagster.core.audio.wav import parse_wav
from hybrid_audio_dagster.core.messages import manifest_path, read_manifest
from hybrid_audio_dagster.core.stems import StemStore
from hybrid_audio_dagster.core.templates import load_templates
from hybrid_audio_dagster.resources.gcs import DeliveryResource
from hybrid_audio_dagster.resources.paths import ProjectPaths

MIN_PREFIX = 8
MAX_PREVIEW_BYTES = 8 * 1024 * 1024


def _result(context, value: dict) -> dg.Output[dict]:
    return dg.Output(value, metadata={"result": dg.MetadataValue.json(value)})


class InvalidateConfig(dg.Config):
    """Stems to invalidate: signatures, or unique prefixes of at least 8 hex digits."""

    stems: list[str]


@dg.op(description="Marks stems (by signature) so the next stems run re-synthesizes exactly them.")
def invalidate_stems(context: dg.OpExecutionContext, config: InvalidateConfig, paths: ProjectPaths) -> dg.Output[dict]:
    store = StemStore(paths.stems)
    known = list(store.signatures())
    found, problems = [], []
    for wanted in dict.fromkeys(s.strip().lower() for s in config.stems):
        if len(wanted) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in wanted):
            problems.append(f"{wanted!r}: give a signature or a prefix of at least {MIN_PREFIX} hex digits")
            continue
        matches = [(e, s) for e, s in known if s.startswith(wanted)]
        if len(matches) != 1:
            problems.append(f"{wanted!r}: {'no stored stem' if not matches else f'{len(matches)} stems'} match")
            continue
        found.append(matches[0])
    if problems:
        raise dg.Failure("nothing invalidated: " + "; ".join(problems))
    done = [{"engine": e, "signature": s, "files": store.invalidate(e, s)} for e, s in found]
    run_auditor(context, paths)("stems_invalidated", stems=[d["signature"][:16] for d in done], files=sum(d["files"] for d in done))
    return _result(context, {"invalidated": done})


@dg.job(description="Invalidates stems by signature: the next stems run re-synthesizes exactly them.")
def invalidate_stems_job() -> None:
    invalidate_stems()


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


@dg.op(description="One message: its path, duration, verification and (on request) its timing picture.")
def message_info(context: dg.OpExecutionContext, config: MessageInfoConfig, paths: ProjectPaths, gcs: DeliveryResource) -> dg.Output[dict]:
    rows = {r["name_key"]: r for r in read_manifest(manifest_path(paths.output, config.template, config.developer))}
    row = rows.get(config.name)
    if row is None:
        raise dg.Failure(f"no message for {config.name!r} in {config.template}/{config.developer}: run `hybrid-audio assemble` first")
    problems = verify_row(paths, row)
    out = {
        "path": str(paths.output / row["path"]), "relpath": row["path"], "duration_s": round(row["duration_s"], 3),
        "frames": row["frames"], "sample_rate": row["sample_rate"], "sha256": row["sha256"],
        "verified": not problems, "problems": problems, "timeline": json.loads(row["timeline"]), "uri": None,
    }
    if gcs.enabled:  # the delivered copy, when the bucket has it
        obj = gcs.layout.output_object(row["path"])
        out["uri"] = gcs.uri(obj) if gcs.exists(obj) else None
    if config.picture:
        from hybrid_audio_dagster.core.messages.picture import picture_of_row, segment_labels

        tpl = load_templates(paths.templates).get(config.template)
        from hybrid_audio_dagster.assets.datasets import read_snapshot

        dev = read_snapshot(paths, "developers").get(config.developer, config.developer)
        labels = segment_labels(tpl, row["name"], dev) if tpl else None
        out["png_b64"] = base64.b64encode(picture_of_row(paths.output, paths.stems, row, labels=labels).png).decode("ascii")
    return _result(context, out)


@dg.job(description="Reads one message's manifest row, verifies it bit-exactly, draws its timing on request.")
def message_info_job() -> None:
    message_info()


class DatasetsAdminConfig(dg.Config):
    action: str  # list | preview | delete
    name: str = ""  # delete: '<kind>/<file>' as listed
    content_b64: str = ""  # preview: the file's bytes
    filename: str = ""
    role: str = ""
    n: int = 20


@dg.op(description="Lists, previews (validates without ingesting) or deletes dataset files.")
def datasets_admin(context: dg.OpExecutionContext, config: DatasetsAdminConfig, paths: ProjectPaths) -> dg.Output[dict]:
    try:
        if config.action == "list":
            return _result(context, {"datasets": dataset_admin.list_datasets(paths)})
        if config.action == "preview":
            if len(config.content_b64) > 4 * (MAX_PREVIEW_BYTES // 3 + 2):
                raise dg.Failure(f"preview: larger than {MAX_PREVIEW_BYTES} bytes")
            try:
                data = base64.b64decode(config.content_b64, validate=True)
            except (binascii.Error, ValueError):
                raise dg.Failure("preview: content_b64 is not base64") from None
            out = dataset_admin.preview(paths, data, config.role or None, n=config.n, filename=config.filename or None)
            return _result(context, json.loads(json.dumps(out, default=str)))
        if config.action == "delete":
            removed = dataset_admin.delete(paths, config.name, refresh=False)
            run_auditor(context, paths)("dataset_deleted", stored_as=config.name)
            return _result(context, {"deleted": config.name, "path": str(removed)})
    except dataset_admin.DatasetAdminError as exc:
        raise dg.Failure(str(exc)) from None
    raise dg.Failure(f"unknown action {config.action!r} (list, preview, delete)")


@dg.job(description="Dataset files: list, preview, delete (the `hybrid-audio datasets` CLI).")
def datasets_admin_job() -> None:
    datasets_admin()
