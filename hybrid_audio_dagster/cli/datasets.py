"""``datasets``: upload (a small file's bytes travel in an ingest run's config; a big one is
read from the server's inbox by reference), preview, list, delete.

A refusal from the webserver (a file the dataset rules reject, an unknown or unsafe name)
exits 2 with the server's reason, in text and with ``--json`` (``"ok": false``) alike.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from hybrid_audio_dagster.cli.client import RemoteError
from hybrid_audio_dagster.cli.common import STATE, TRIGGER, Exit, JsonOpt, as_json, emit, fail, output_of, run_and_wait

datasets_app = typer.Typer(
    help="Dataset files (names, developers, the suppression list): upload, preview, list, delete.", no_args_is_help=True
)
MAX_BYTES = 5 * 1024 * 1024  # what a run's config carries (the server's DEFAULT_MAX_BYTES); bigger files go through the inbox
REFERENCE_LIMITS = "32 MiB and 1,000,000 rows"  # what an ingest run reads from the inbox (REFERENCE_MAX_BYTES / _ROWS)
ROLE_PREFIXES = {"names": ("names",), "developers": ("developers", "brands"), "suppression": ("suppression", "suppress", "opt")}
RoleOpt = Annotated[str | None, typer.Option("--role", help="names, developers or suppression (default: from the file name).")]
FileArg = Annotated[Path | None, typer.Argument(help="A local file (at most 5 MiB; bigger ones go through the inbox).")]
FromInboxOpt = Annotated[
    str | None,
    typer.Option(
        "--from-inbox", metavar="NAME", help="A file already in the server's inbox (a plain file name), read there: for lists over 5 MiB."
    ),
]


def _check_role(role: str | None) -> None:
    if role is not None and role not in ROLE_PREFIXES:
        fail(f"unknown role {role!r}: names, developers or suppression", Exit.REFUSED)


def _server_inbox() -> str:
    """The inbox folder on the server, as its ``paths`` resource says (a hint when it can't be read)."""
    try:
        values = STATE.client.resource_values("paths")
    except RemoteError:
        values = {}
    if values.get("inbox_dir"):
        return values["inbox_dir"]
    return f"{values['root'].rstrip('/')}/data/inbox" if values.get("root") else "data/inbox/ in the project on the server"


def _too_big(file: Path, size: int, role: str | None, verb: str) -> NoReturn:
    named = role is not None or file.name.lower().startswith(("names", "developers", "brands", "name", "developer", "brand", "suppress"))
    role_hint = f" --role {role}" if role else ("" if named else " --role names|developers|suppression")
    fail(
        f"{file.name} is {size} bytes, over the {MAX_BYTES} bytes an upload carries in a run's config. Copy it into the inbox on "
        f"the server ({_server_inbox()}), then run `hybrid-audio datasets {verb} --from-inbox {file.name}{role_hint}`: the run reads it "
        f"there (up to {REFERENCE_LIMITS}) with the same validation, rejection report and audit",
        Exit.REFUSED,
    )


def _read(file: Path, role: str | None, verb: str) -> tuple[bytes, str]:
    _check_role(role)
    if not file.is_file():
        fail(f"no such file: {file}", Exit.REFUSED)
    size = file.stat().st_size
    if size > MAX_BYTES:
        _too_big(file, size, role, verb)
    name = file.name
    if role is not None and not name.lower().startswith(ROLE_PREFIXES[role]):
        name = f"{role}-{name}"  # the server reads the role from the name, as for an inbox file
    return file.read_bytes(), name


def _one_source(file: Path | None, from_inbox: str | None) -> None:
    if (file is None) == (from_inbox is None):
        fail("give either FILE or --from-inbox NAME", Exit.REFUSED)


def _admin(action: str, **config) -> dict:
    [r] = run_and_wait(
        [("datasets_admin_job", {"run_config": {"ops": {"datasets_admin": {"config": {"action": action, **config}}}}, "tags": TRIGGER})],
        f"datasets {action}",
    )
    return output_of(r, "datasets_admin")


@datasets_app.command("upload")
def upload(
    file: FileArg = None,
    role: RoleOpt = None,
    from_inbox: FromInboxOpt = None,
    build: Annotated[bool, typer.Option("--build", help="Then let pipeline_sensor build the new items' stems and messages.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Validate and ingest FILE over HTTP (an ingest_job run carrying its bytes), or a file already in the inbox (--from-inbox)."""
    as_json(json_)
    _one_source(file, from_inbox)
    if file is not None:
        data, name = _read(file, role, "upload")
        detected = role or next((r for r, prefixes in ROLE_PREFIXES.items() if name.lower().startswith(prefixes)), None)
        if detected is None:
            fail(f"cannot tell the role of {file.name!r}: pass --role names|developers|suppression", Exit.REFUSED)
        sha = hashlib.sha256(data).hexdigest()
        source = {"content_b64": base64.b64encode(data).decode(), "filename": name}
    else:
        _check_role(role)
        entry = _admin("inbox", inbox_file=from_inbox)
        detected = role or entry.get("role")
        if detected is None:
            fail(f"cannot tell the role of {from_inbox!r} from its name: pass --role names|developers|suppression", Exit.REFUSED)
        sha = entry["sha256"]
        source = {"inbox_file": from_inbox, "role": role or ""}
    key = f"{detected}-{sha[:16]}"
    STATE.client.add_partition("uploads", key)
    tags = {
        **TRIGGER,
        "hybrid_audio/pipeline": f"upload-{sha[:16]}-{time.time_ns()}",
        "hybrid_audio/stage": "datasets",
        "hybrid_audio/driver": "daemon" if build else "cli",
        "hybrid_audio/scope": detected,
    }
    config = {"ops": {"dataset_uploads": {"config": {"sha256": sha, **source}}}}
    # a refusal (the file rejected, the name unsafe) raises Refused: exit 2 with the server's reason
    [r] = run_and_wait([("ingest_job", {"partition": key, "run_config": config, "tags": tags})], "ingest", fail_on_error=False)
    md = {m["asset"]: m["metadata"] for m in r.materializations}
    if r.status != "SUCCESS":
        fail(f"upload failed (run {r.run_id}): {r.failure or r.status}", Exit.FAILED)
    up = md.get("dataset_uploads", {})
    new = (md.get(f"{detected}_dataset") or {}).get("new_keys") or []
    names_md = md.get("names_dataset") or {}
    sup = md.get("suppression") or {}
    emit(
        {
            "ok": True,
            "run_id": r.run_id,
            "status": up.get("status"),
            "stored_as": up.get("stored_as"),
            "rows": up.get("rows"),
            "rejected_rows": up.get("rejected_rows"),
            "new_keys": new,
            "by_reference": from_inbox is not None,
            # names kept out because the suppression list holds them (refused rows, reason "suppressed")
            "suppressed_rows": names_md.get("suppressed", 0),
            "suppressed": sup.get("suppressed"),
            "messages_retired": sup.get("messages_retired", 0),
        },
        [
            f"{up.get('status')}: {up.get('stored_as')} ({up.get('rows', 0)} rows, {up.get('rejected_rows', 0)} rejected)",
            *(
                [f"new {detected}: {', '.join(new[:50]) if new else 'none'}{f' … ({len(new)} in all)' if len(new) > 50 else ''}"]
                if detected != "suppression"
                else [f"suppressed: {sup.get('suppressed')} people; this change retired {sup.get('messages_retired', 0)} messages"]
            ),
            *(
                [f"refused (suppressed): {names_md['suppressed']} names row(s) on the suppression list"]
                if names_md.get("suppressed")
                else []
            ),
        ],
    )


@datasets_app.command("preview")
def preview(
    file: FileArg = None,
    role: RoleOpt = None,
    from_inbox: FromInboxOpt = None,
    n: Annotated[int, typer.Option("-n", help="Items to show.")] = 20,
    json_: JsonOpt = False,
) -> None:
    """Normalised items and rejects of FILE (or of an inbox file), validated by the webserver; nothing is ingested.
    Exits 2 with the reason when an upload of it would be refused."""
    as_json(json_)
    _one_source(file, from_inbox)
    if file is not None:
        data, name = _read(file, role, "preview")
        out = _admin("preview", content_b64=base64.b64encode(data).decode(), filename=name, role=role or "", n=n)
    else:
        _check_role(role)
        out = _admin("preview", inbox_file=from_inbox, role=role or "", n=n)
    report = out.get("report") or {}
    rejects = out.get("rejects", [])
    lines = (
        [f"{i.get('key', ''):<24} {i.get('display', '')}" for i in out.get("items", [])]
        + [f"{out.get('total_items', 0)} items, {len(rejects)} rejected"]
        + [f"  row {x.get('row')}: {x.get('value')!r}: {x.get('reason')}" for x in rejects[:20]]
    )
    if report.get("status") == "rejected":
        problem = report.get("problem") or {}
        if not STATE.json:
            emit(None, lines)
        fail(
            f"an upload of {report.get('filename') or from_inbox or file.name} would be refused ({problem.get('code')}): {problem.get('message')}",
            Exit.REFUSED,
            {**out, "problem": problem.get("code")},
        )
    emit({"ok": True, **out}, lines)


LISTED_BY = ("names_dataset", "developers_dataset", "suppression")  # each records its kind's `listing`
# the runs that add or remove dataset files: an upload (ingest_job re-records the listing when it
# succeeds, not when it fails half-way or is still going), a delete (delete_upload_job records
# nothing), an erase (erase_name_job rewrites files); one created after the listing makes it stale
LISTING_WRITERS = ("ingest_job", "delete_upload_job", "erase_name_job")


def _recorded_listing() -> dict | None:
    """The listing the dataset assets recorded in their latest materializations (no run);
    None when one of them never recorded it or a writer ran after it (the caller then asks a run)."""
    try:
        records = STATE.client.records_if_fresh(LISTED_BY, writer_jobs=LISTING_WRITERS)
    except RemoteError:
        return None
    if records is None or any(records[asset].get("listing") is None for asset in LISTED_BY):
        return None
    return {"datasets": [entry for asset in LISTED_BY for entry in records[asset]["listing"]]}


@datasets_app.command("list")
def list_(json_: JsonOpt = False) -> None:
    """Seed files and accepted uploads (the names `delete` takes)."""
    as_json(json_)
    out = _recorded_listing() or _admin("list")
    emit({"ok": True, **out}, [f"{d['kind']:<11} {d['source']:<7} {d['name']:<60} {d.get('size', 0):>8}B" for d in out.get("datasets", [])])


@datasets_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="'<names|developers|suppression>/<file>' as `datasets list` shows it.")],
    refresh: Annotated[bool, typer.Option(help="Then rebuild the rosters (a datasets_job run).")] = True,
    json_: JsonOpt = False,
) -> None:
    """Delete an accepted upload, then rebuild the rosters (their removed items' messages are retired)."""
    as_json(json_)
    # its own job, not an action of datasets_admin_job: `datasets list` then knows, from the run
    # alone, that the listing the dataset assets recorded is older than the delete
    [r] = run_and_wait(
        [("delete_upload_job", {"run_config": {"ops": {"delete_upload": {"config": {"name": name}}}}, "tags": TRIGGER})], "delete"
    )
    out = output_of(r, "delete_upload")
    runs = run_and_wait([("datasets_job", {"tags": {**TRIGGER, "hybrid_audio/stage": "datasets"}})], "datasets") if refresh else []
    emit(
        {"ok": True, **out, "refresh_run": runs[0].run_id if runs else None},
        f"deleted {out.get('deleted')}" + (" and rebuilt the rosters" if runs else ""),
    )
