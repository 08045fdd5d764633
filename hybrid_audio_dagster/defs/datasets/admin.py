"""``datasets_admin_job`` (``hybrid-audio datasets list|preview|delete``): list, preview
(validate without ingesting) or delete dataset files; uploads go through ``ingest_job``
with the bytes in run config."""

import base64
import binascii
import json

import dagster as dg

from hybrid_audio_dagster.core.datasets import admin as dataset_admin
from hybrid_audio_dagster.core.datasets.files import DatasetAdminError
from hybrid_audio_dagster.defs.cli_result import cli_result
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths

MAX_PREVIEW_BYTES = 8 * 1024 * 1024


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
            return cli_result({"datasets": dataset_admin.list_datasets(paths)})
        if config.action == "preview":
            if len(config.content_b64) > 4 * (MAX_PREVIEW_BYTES // 3 + 2):
                raise dg.Failure(f"preview: larger than {MAX_PREVIEW_BYTES} bytes")
            try:
                data = base64.b64decode(config.content_b64, validate=True)
            except (binascii.Error, ValueError):
                raise dg.Failure("preview: content_b64 is not base64") from None
            out = dataset_admin.preview(paths, data, config.role or None, n=config.n, filename=config.filename or None)
            return cli_result(json.loads(json.dumps(out, default=str)))
        if config.action == "delete":
            removed = dataset_admin.delete(paths, config.name, refresh=False)
            run_auditor(context, paths)("dataset_deleted", stored_as=config.name)
            return cli_result({"deleted": config.name, "path": str(removed)})
    except DatasetAdminError as exc:
        raise dg.Failure(str(exc)) from None
    raise dg.Failure(f"unknown action {config.action!r} (list, preview, delete)")


@dg.job(description="Dataset files: list, preview, delete (the `hybrid-audio datasets` CLI).")
def datasets_admin_job() -> None:
    datasets_admin()
