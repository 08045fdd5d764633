"""``datasets_admin_job`` (``hybrid-audio datasets list|preview|inbox``), which only reads:
list, preview (validate without ingesting), or say what an inbox file is (size, sha256, role)
before ``datasets upload --from-inbox`` ingests it; ``delete_upload_job`` (``hybrid-audio
datasets delete``) deletes an upload; uploads go through ``ingest_job``. The delete is a job
of its own so that a run of it, however launched, tells a reader that the listing the dataset
assets recorded is older than the files. Bad input (an unsafe or unknown name, bad base64) is
refused with :func:`~hybrid_audio_dagster.defs.cli_result.refused`."""

import base64
import binascii
import json

import dagster as dg

from hybrid_audio_dagster.core.datasets import admin as dataset_admin
from hybrid_audio_dagster.core.datasets.files import DatasetAdminError
from hybrid_audio_dagster.core.fsutil import file_sha256
from hybrid_audio_dagster.core.inbox.parse import DEFAULT_MAX_BYTES, REFERENCE_MAX_BYTES, REFERENCE_MAX_ROWS, detect_role
from hybrid_audio_dagster.defs.cli_result import cli_result, refused
from hybrid_audio_dagster.defs.datasets.uploads import inbox_path
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths

MAX_PREVIEW_BYTES = 8 * 1024 * 1024
ACTIONS = ("list", "preview", "inbox")


class DatasetsAdminConfig(dg.Config):
    action: str  # list | preview | inbox
    content_b64: str = ""  # preview: the file's bytes
    filename: str = ""
    inbox_file: str = ""  # preview / inbox: a plain file name in the inbox, read there
    role: str = ""
    n: int = 20


def _inbox_entry(paths: ProjectPaths, name: str) -> dict:
    path = inbox_path(paths, name)
    if path.is_symlink() or not path.is_file():
        present = (
            sorted(p.name for p in paths.inbox.iterdir() if p.is_file() and not p.name.startswith(".")) if paths.inbox.is_dir() else []
        )
        shown = f"; it holds {', '.join(present[:10])}{'…' if len(present) > 10 else ''}" if present else "; it is empty"
        raise refused(f"no file {name!r} in the inbox ({paths.inbox}){shown}", problem="not_in_inbox")
    size = path.stat().st_size
    return {
        "name": name,
        "path": str(path),
        "size": size,
        "sha256": file_sha256(path),
        "role": detect_role(name),
        "max_bytes": REFERENCE_MAX_BYTES,
        "max_rows": REFERENCE_MAX_ROWS,
    }


def _preview_bytes(config: DatasetsAdminConfig) -> bytes:
    if len(config.content_b64) > 4 * (MAX_PREVIEW_BYTES // 3 + 2):
        raise refused(f"preview: larger than {MAX_PREVIEW_BYTES} bytes; preview it from the inbox (--from-inbox)", problem="too_large")
    try:
        return base64.b64decode(config.content_b64, validate=True)
    except (binascii.Error, ValueError):
        raise refused("preview: content_b64 is not base64", problem="not_base64") from None


@dg.op(description="Lists or previews (validates without ingesting) dataset files; describes an inbox file.")
def datasets_admin(config: DatasetsAdminConfig, paths: ProjectPaths) -> dg.Output[dict]:
    if config.action not in ACTIONS:
        raise refused(f"unknown action {config.action!r} ({', '.join(ACTIONS)})", problem="unknown_action")
    try:
        if config.action == "list":
            return cli_result({"datasets": dataset_admin.list_datasets(paths)})
        if config.action == "inbox":
            return cli_result(_inbox_entry(paths, config.inbox_file))
        if config.inbox_file:  # preview, of an inbox file or of the bytes sent
            entry = _inbox_entry(paths, config.inbox_file)
            limits = {"max_bytes": REFERENCE_MAX_BYTES, "max_rows": REFERENCE_MAX_ROWS}
            source, filename = inbox_path(paths, config.inbox_file), config.inbox_file
        else:
            entry, limits = None, {"max_bytes": DEFAULT_MAX_BYTES}
            source, filename = _preview_bytes(config), config.filename or None
        out = dataset_admin.preview(paths, source, config.role or None, n=config.n, filename=filename, **limits)
        if entry is not None:
            out["inbox"] = entry
        return cli_result(json.loads(json.dumps(out, default=str)))
    except DatasetAdminError as exc:
        raise refused(str(exc), problem="refused") from None


@dg.job(description="Dataset files: list, preview, describe an inbox file (the `hybrid-audio datasets` CLI); reads only.")
def datasets_admin_job() -> None:
    datasets_admin()


class DeleteUploadConfig(dg.Config):
    name: str  # '<kind>/<file>' as `datasets list` shows it


@dg.op(description="Deletes one accepted upload (and its report) from the dataset store; the next datasets run rebuilds the rosters.")
def delete_upload(context: dg.OpExecutionContext, config: DeleteUploadConfig, paths: ProjectPaths) -> dg.Output[dict]:
    try:
        removed = dataset_admin.delete(paths, config.name, refresh=False)
    except DatasetAdminError as exc:
        raise refused(str(exc), problem="refused") from None
    run_auditor(context, paths)("dataset_deleted", stored_as=config.name)
    return cli_result({"deleted": config.name, "path": str(removed)})


@dg.job(description="Deletes an accepted dataset upload (`hybrid-audio datasets delete`); `datasets list` asks a run after it.")
def delete_upload_job() -> None:
    delete_upload()
