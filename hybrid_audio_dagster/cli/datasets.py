"""``datasets``: upload (the file's bytes travel in an ingest run's config), preview, list, delete."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from hybrid_audio_dagster.cli.common import STATE, TRIGGER, Exit, JsonOpt, as_json, emit, fail, output_of, run_and_wait

datasets_app = typer.Typer(help="Dataset files (names, developers): upload, preview, list, delete.", no_args_is_help=True)
MAX_BYTES = 5 * 1024 * 1024  # the ingest run's own bound (DEFAULT_MAX_BYTES) applies again server-side
ROLE_PREFIXES = {"names": ("names",), "developers": ("developers", "brands")}
RoleOpt = Annotated[Optional[str], typer.Option("--role", help="names or developers (default: from the file name).")]


def _read(file: Path, role: str | None) -> tuple[bytes, str]:
    if role is not None and role not in ROLE_PREFIXES:
        fail(f"unknown role {role!r}: names or developers", Exit.REFUSED)
    if not file.is_file():
        fail(f"no such file: {file}", Exit.REFUSED)
    if file.stat().st_size > MAX_BYTES:
        fail(f"{file.name} is larger than {MAX_BYTES} bytes", Exit.REFUSED)
    name = file.name
    if role is not None and not name.lower().startswith(ROLE_PREFIXES[role]):
        name = f"{role}-{name}"  # the server reads the role from the name, as for an inbox file
    return file.read_bytes(), name


@datasets_app.command("upload")
def upload(file: Path, role: RoleOpt = None,
           build: Annotated[bool, typer.Option("--build", help="Then let pipeline_sensor build the new items' stems and messages.")] = False,
           json_: JsonOpt = False) -> None:
    """Validate and ingest FILE over HTTP (an ingest_job run carrying its bytes)."""
    as_json(json_)
    data, name = _read(file, role)
    detected = role or next((r for r, prefixes in ROLE_PREFIXES.items() if name.lower().startswith(prefixes)), None)
    if detected is None:
        fail(f"cannot tell the role of {file.name!r}: pass --role names|developers", Exit.REFUSED)
    sha = hashlib.sha256(data).hexdigest()
    key = f"{detected}-{sha[:16]}"
    STATE.client.add_partition("uploads", key)
    tags = {**TRIGGER, "hybrid_audio/pipeline": f"upload-{sha[:16]}-{time.time_ns()}", "hybrid_audio/stage": "datasets",
            "hybrid_audio/driver": "daemon" if build else "cli", "hybrid_audio/scope": detected}
    config = {"ops": {"dataset_uploads": {"config": {"sha256": sha, "content_b64": base64.b64encode(data).decode(), "filename": name}}}}
    [r] = run_and_wait([("ingest_job", {"partition": key, "run_config": config, "tags": tags})], "ingest", fail_on_error=False)
    md = {m["asset"]: m["metadata"] for m in r.materializations}
    if r.status != "SUCCESS":
        fail(f"upload refused (run {r.run_id}): {r.failure or r.status}", Exit.FAILED if "rejected" not in r.failure else Exit.REFUSED)
    up = md.get("dataset_uploads", {})
    new = (md.get(f"{detected}_dataset") or {}).get("new_keys") or []
    emit({"ok": True, "run_id": r.run_id, "status": up.get("status"), "stored_as": up.get("stored_as"), "rows": up.get("rows"),
          "rejected_rows": up.get("rejected_rows"), "new_keys": new},
         [f"{up.get('status')}: {up.get('stored_as')} ({up.get('rows', 0)} rows, {up.get('rejected_rows', 0)} rejected)",
          f"new {detected}: {', '.join(new) if new else 'none'}"])


def _admin(action: str, **config) -> dict:
    [r] = run_and_wait([("datasets_admin_job", {"run_config": {"ops": {"datasets_admin": {"config": {"action": action, **config}}}},
                                                "tags": TRIGGER})], f"datasets {action}")
    return output_of(r, "datasets_admin")


@datasets_app.command("preview")
def preview(file: Path, role: RoleOpt = None, n: Annotated[int, typer.Option("-n", help="Items to show.")] = 20, json_: JsonOpt = False) -> None:
    """Normalised items and rejects of FILE, validated by the webserver; nothing is ingested."""
    as_json(json_)
    data, name = _read(file, role)
    out = _admin("preview", content_b64=base64.b64encode(data).decode(), filename=name, role=role or "", n=n)
    emit({"ok": True, **out}, [f"{i.get('key', ''):<24} {i.get('display', '')}" for i in out.get("items", [])]
         + [f"{out.get('total_items', 0)} items, {len(out.get('rejects', []))} rejected"]
         + [f"  row {x.get('row')}: {x.get('value')!r}: {x.get('reason')}" for x in out.get("rejects", [])[:20]])


@datasets_app.command("list")
def list_(json_: JsonOpt = False) -> None:
    """Seed files and accepted uploads (the names `delete` takes)."""
    as_json(json_)
    out = _admin("list")
    emit({"ok": True, **out}, [f"{d['kind']:<11} {d['source']:<7} {d['name']:<60} {d.get('size', 0):>8}B" for d in out.get("datasets", [])])


@datasets_app.command("delete")
def delete(name: Annotated[str, typer.Argument(help="'<names|developers>/<file>' as `datasets list` shows it.")],
           refresh: Annotated[bool, typer.Option(help="Then rebuild the rosters (a datasets_job run).")] = True, json_: JsonOpt = False) -> None:
    """Delete an accepted upload, then rebuild the rosters (their removed items' messages are retired)."""
    as_json(json_)
    out = _admin("delete", name=name)
    runs = run_and_wait([("datasets_job", {"tags": {**TRIGGER, "hybrid_audio/stage": "datasets"}})], "datasets") if refresh else []
    emit({"ok": True, **out, "refresh_run": runs[0].run_id if runs else None}, f"deleted {out.get('deleted')}" + (" and rebuilt the rosters" if runs else ""))
