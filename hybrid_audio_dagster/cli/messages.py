"""``generate`` (stems), ``assemble`` (one message now), ``picture``, ``batch`` and ``erase``."""

from __future__ import annotations

import base64
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer

from hybrid_audio_dagster.cli.client import RANGE_END_TAG, RANGE_START_TAG
from hybrid_audio_dagster.cli.common import (
    STATE,
    TRIGGER,
    Exit,
    JsonOpt,
    as_json,
    emit,
    fail,
    output_of,
    pick,
    project_root,
    run_and_wait,
    slugish,
)

generate_app = typer.Typer(help="Synthesize (or re-find) stems now: a name's, a developer's, or both.", no_args_is_help=True)
STEM_JOB = {"name": ("name_stems_job", "name_stems", "names"), "developer": ("developer_stems_job", "developer_stems", "developers")}
ForceOpt = Annotated[bool, typer.Option("--force", help="Re-synthesize even stored stems (audited; costs TTS characters).")]

# the batch summary's counters, tallied from the stage runs and printed in this order
SUMMARY_KEYS = (
    "messages_written",
    "messages_skipped",
    "messages_failed",
    "tts_calls",
    "chars_sent",
    "cache_hits",
    "stem_partitions",
    "message_partitions",
    "stem_runs",
)


def _stems(kind: str, keys: list[str], force: bool) -> list[dict]:
    job, asset, _ = STEM_JOB[kind]
    launches = [(job, {"partition": k, "run_config": {"ops": {asset: {"config": {"force": force}}}}, "tags": TRIGGER}) for k in keys]
    results = run_and_wait(launches, f"{asset}")
    root = project_root()
    rows = []
    for r in results:
        for m in r.materializations:
            md = m["metadata"]
            for sig, rec in (md.get("stems") or {}).items():
                local = str(Path(root) / "stems" / rec["path"]) if root else rec["path"]
                rows.append(
                    {
                        "kind": kind,
                        "partition": m["partition"],
                        "signature": sig,
                        "text": rec["text"],
                        "path": local,
                        "sha256": rec["sha256"],
                        "duration_s": round(rec["frames"] / rec["sample_rate"], 3),
                        "run_id": r.run_id,
                    }
                )
    return rows


def _stem_report(rows: list[dict]) -> None:
    emit(
        {"ok": True, "stems": rows},
        [f"{r['kind']:<9} {r['partition']:<20} {r['duration_s']:>6.2f}s  {r['signature'][:12]}  {r['path']}" for r in rows],
    )


PronunciationOpt = Annotated[
    str | None,
    typer.Option(
        "--pronunciation",
        "-p",
        help="Preview the name said this way: a respelling (shi-VAWN) or /IPA/ (''"
        " = the dataset's own); stems are stored by signature, no partition is recorded, any name is accepted.",
    ),
]


@generate_app.command("name")
def generate_name(
    name: str,
    force: ForceOpt = False,
    pronunciation: PronunciationOpt = None,
    template: Annotated[str | None, typer.Option(help="Only this template (preview).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Stems of one name (every template's name segments); with --pronunciation, a preview."""
    as_json(json_)
    if pronunciation is None:
        if template:
            fail("--template goes with --pronunciation (a preview)", Exit.REFUSED)
        key = pick("name", name, STATE.client.partition_keys("name_stems"))
        _stem_report(_stems("name", [key], force))
        return
    from hybrid_audio_dagster.core.pronounce.spec import PronunciationError, parse_pronunciation

    if force:
        fail("--force does not go with --pronunciation (a preview reuses stored stems)", Exit.REFUSED)
    try:
        parse_pronunciation(pronunciation)  # refused here, before a run is launched or a character billed
    except PronunciationError as exc:
        fail(f"pronunciation {pronunciation!r} refused ({exc.code}): {exc.message}", Exit.REFUSED)
    known = STATE.client.partition_keys("name_stems")
    key = name if name in known else slugish(name) if slugish(name) in known else name
    config = {"name": key, "pronunciation": pronunciation, "template": template or ""}
    run = run_and_wait(
        [("stem_preview_job", {"run_config": {"ops": {"stem_preview": {"config": config}}}, "tags": TRIGGER})], "stem_preview"
    )[0]
    out = output_of(run, "stem_preview")
    rows = [{"kind": "name", "partition": out.get("key") or "(preview)", **r, "run_id": run.run_id} for r in out.get("stems", [])]
    said = "; ".join(f"{t} → {p}" for t, p in out.get("pronunciation", [])) or "as written"
    emit(
        {"ok": True, "name": out.get("name"), "pronunciation": out.get("pronunciation"), "tts_calls": out.get("tts_calls"), "stems": rows},
        [f"{out.get('name')} said {said}: {out.get('tts_calls', 0)} TTS call(s)"]
        + [f"{r['template']}/{r['segment']:<10} {r['duration_s']:>6.2f}s  {r['signature'][:12]}  {r['path']}" for r in rows],
    )


@generate_app.command("developer")
def generate_developer(developer: str, force: ForceOpt = False, json_: JsonOpt = False) -> None:
    """Stems of one developer (every template's developer segments)."""
    as_json(json_)
    key = pick("developer", developer, STATE.client.partition_keys("developer_stems"))
    _stem_report(_stems("developer", [key], force))


@generate_app.command("combined")
def generate_combined(name: str, developer: str, force: ForceOpt = False, json_: JsonOpt = False) -> None:
    """Stems of a name and of a developer (what their messages need besides the script)."""
    as_json(json_)
    n = pick("name", name, STATE.client.partition_keys("name_stems"))
    d = pick("developer", developer, STATE.client.partition_keys("developer_stems"))
    _stem_report(_stems("name", [n], force) + _stems("developer", [d], force))


def _template(template: str | None) -> str:
    known = STATE.client.partition_keys("script_stems")
    if template is None:
        if not known:
            fail("no templates registered yet; run `hybrid-audio batch` first", Exit.REFUSED)
        return "followup-en" if "followup-en" in known else known[0]
    return pick("template", template, known)


def message_info(template: str, developer: str, name: str, *, picture: bool = False) -> dict:
    [r] = run_and_wait(
        [
            (
                "message_info_job",
                {
                    "run_config": {
                        "ops": {
                            "message_info": {"config": {"template": template, "developer": developer, "name": name, "picture": picture}}
                        }
                    },
                    "tags": TRIGGER,
                },
            )
        ],
        "message info",
    )
    return output_of(r, "message_info")


def assemble(
    name: str,
    developer: str,
    template: Annotated[str | None, typer.Option(help="Template id (default followup-en).")] = None,
    picture: Annotated[Path | None, typer.Option(help="Also write the timing picture (PNG) here.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if unchanged.")] = False,
    json_: JsonOpt = False,
) -> None:
    """One message now: a messages run restricted to NAME over the TEMPLATE × DEVELOPER partition; prints its path and duration."""
    as_json(json_)
    started = time.perf_counter()
    client = STATE.client
    n = pick("name", name, client.partition_keys("name_stems"))
    d = pick("developer", developer, client.partition_keys("developer_stems"))
    t = _template(template)
    key = f"{d}|{t}"  # the messages multi-partition key (dimensions sorted: developer, template)
    [run] = run_and_wait(
        [
            (
                "messages_job",
                {
                    "run_config": {"ops": {"messages": {"config": {"names": [n], "force": force}}}},
                    "tags": {**TRIGGER, RANGE_START_TAG: key, RANGE_END_TAG: key},
                },
            )
        ],
        "messages",
        fail_on_error=False,
    )
    if run.status != "SUCCESS":
        hint = f"; make them with `hybrid-audio generate combined {n} {d}` (or `batch`)" if "not stored" in run.failure else ""
        fail(f"run {run.run_id} {run.status.lower()}: {run.failure or 'see the run in the Dagster UI'}{hint}", Exit.FAILED)
    md = next((m["metadata"] for m in run.materializations if m["asset"] == "messages"), {})
    # the messages run describes the names it was restricted to: a second run only for a picture
    described = (md.get("described") or {}).get(n)
    info = dict(described) if described and picture is None else message_info(t, d, n, picture=picture is not None)
    if picture is not None:
        picture.write_bytes(base64.b64decode(info.pop("png_b64")))
    info.pop("timeline", None)
    data = {
        "ok": info["verified"],
        "template": t,
        "developer": d,
        "name": n,
        **info,
        "written": md.get("written", 0),
        "run_id": run.run_id,
        "seconds": round(time.perf_counter() - started, 2),
        "picture": str(picture) if picture else None,
    }
    emit(
        data,
        [f"{info['path']}  {info['duration_s']:.2f}s  {'verified' if info['verified'] else 'NOT VERIFIED: ' + '; '.join(info['problems'])}"]
        + ([f"delivered: {info['uri']}"] if info.get("uri") else [])
        + ([f"picture: {picture}"] if picture else []),
    )
    if not info["verified"]:
        raise typer.Exit(Exit.FAILED)


def picture(
    name: str,
    developer: str,
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path("timing.png"),
    template: Annotated[str | None, typer.Option(help="Template id (default followup-en).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Write the timing picture (PNG) of an existing message."""
    as_json(json_)
    client = STATE.client
    n = pick("name", name, client.partition_keys("name_stems"))
    d = pick("developer", developer, client.partition_keys("developer_stems"))
    info = message_info(_template(template), d, n, picture=True)
    out.write_bytes(base64.b64decode(info.pop("png_b64")))
    emit({"ok": True, "picture": str(out), "message": info["path"], "segments": info["timeline"]["entries"]}, f"{out}  (of {info['path']})")


def _plan(templates: list[str], developers: list[str], names: list[str], force: bool, tags: dict, *, requests: bool = False) -> dict:
    config = {"templates": templates, "developers": developers, "names": names, "force": force, "requests": requests}
    [r] = run_and_wait([("batch_plan_job", {"run_config": {"ops": {"batch_plan_op": {"config": config}}}, "tags": tags})], "plan")
    return output_of(r, "batch_plan_op")


def batch(
    template: Annotated[list[str] | None, typer.Option("--template", "-t", help="Only this template (repeatable).")] = None,
    developer: Annotated[list[str] | None, typer.Option("--developer", "-d", help="Only this developer (repeatable).")] = None,
    name: Annotated[list[str] | None, typer.Option("--name", "-n", help="Only this name (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what it would do: stems, characters (TTS cost), messages.")] = False,
    force_stems: Annotated[bool, typer.Option("--force-stems", help="Re-synthesize every stem in the selection.")] = False,
    json_: JsonOpt = False,
) -> None:
    """The full batch (datasets → stems → messages) or a selection of it, as runs in the webserver."""
    as_json(json_)
    started = time.perf_counter()
    client = STATE.client
    known = {
        "template": client.partition_keys("script_stems"),
        "developer": client.partition_keys("developer_stems"),
        "name": client.partition_keys("name_stems"),
    }
    sel = {
        k: [pick(k, v, known[k]) if known[k] else v for v in vals or []]
        for k, vals in (("template", template), ("developer", developer), ("name", name))
    }
    pipeline = f"cli-{uuid.uuid4().hex[:12]}"
    tags = {**TRIGGER, "hybrid_audio/pipeline": pipeline, "hybrid_audio/driver": "cli", "hybrid_audio/scope": "names" if name else "full"}
    if dry_run:
        plan = _plan(sel["template"], sel["developer"], sel["name"], force_stems, tags)
        plan.pop("requests", None)
        emit(
            {"ok": True, "dry_run": True, **plan},
            [
                f"stems to synthesize  {plan['stems_to_synthesize']}",
                f"characters (TTS)     {plan['chars']}",
                f"messages to write    {plan['messages_to_write']}",
                f"messages unchanged   {plan['messages_to_skip']}",
                f"message partitions   {plan['message_partitions']}",
            ],
        )
        return
    # each stage is a normal run of its asset job, launched here through the webserver (queue,
    # launcher, pools), once the previous stage's runs succeeded: datasets → plan → stems → messages
    runs = run_and_wait([("datasets_job", {"tags": {**tags, "hybrid_audio/stage": "datasets"}})], "datasets")
    plan = _plan(sel["template"], sel["developer"], sel["name"], force_stems, tags, requests=True)
    for stage in ("stems", "messages"):
        launches = [
            (r["job"], {"run_config": r["run_config"], "tags": r["tags"], "partition": r["partition"]}) for r in plan["requests"][stage]
        ]
        if launches:
            runs += run_and_wait(launches, stage)
    totals = _tally(runs)
    keys = SUMMARY_KEYS
    data = {
        "ok": totals["messages_failed"] == 0,
        **{k: totals[k] for k in keys},
        "planned_chars": plan["chars"],
        "stage_runs": [r.run_id for r in runs],
        "seconds": round(time.perf_counter() - started, 2),
    }
    emit(data, [f"{k.replace('_', ' '):<20} {data[k]}" for k in (*keys, "planned_chars", "seconds")])
    if data["messages_failed"]:
        raise typer.Exit(Exit.FAILED)


def _tally(runs) -> dict:
    """The batch summary, from the stage runs' materialization metadata."""
    out = dict.fromkeys(SUMMARY_KEYS, 0)
    for run in runs:
        stems_run = False
        for m in run.materializations:
            md = m["metadata"]
            if m["asset"].endswith("_stems"):
                stems_run = True
                out["stem_partitions"] += 1
                for k in ("tts_calls", "cache_hits", "chars_sent"):
                    out[k] += int(md.get(k) or 0)
            elif m["asset"] == "messages":
                out["message_partitions"] += 1
                for k, label in (("messages_written", "written"), ("messages_skipped", "skipped"), ("messages_failed", "failed")):
                    out[k] += int(md.get(label) or 0)
        out["stem_runs"] += stems_run
    return out


def erase(name: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False, json_: JsonOpt = False) -> None:
    """Erase one person completely (privacy request): dataset rows, messages, their stems, their partition."""
    as_json(json_)
    client = STATE.client
    if not client.has_job("erase_name_job"):
        fail("erase_name_job is not in this code location", Exit.NOT_WIRED)
    key = pick("name", name, client.partition_keys("name_stems"))
    if not yes and not STATE.json and not typer.confirm(f"erase {key!r} everywhere?"):
        raise typer.Exit(Exit.REFUSED)
    [r] = run_and_wait(
        [
            (
                "erase_name_job",
                {"run_config": {"ops": {"erase_name": {"config": {"name": key}}}}, "tags": {**TRIGGER, "hybrid_audio/trigger": "cli"}},
            )
        ],
        "erase",
    )
    summary = next(iter(r.outputs.values()), {})
    emit({"ok": True, "run_id": r.run_id, **summary}, f"erased (run {r.run_id}): " + ", ".join(f"{k}={v}" for k, v in summary.items()))
