"""``cache`` (the stem index as Dagster holds it) and ``bucket`` (GCS, when wired)."""

from __future__ import annotations

from typing import Annotated

import typer

from hybrid_audio_dagster.cli.client import RANGE_END_TAG, RANGE_START_TAG, RemoteError
from hybrid_audio_dagster.cli.common import STATE, TRIGGER, Exit, JsonOpt, as_json, emit, fail, output_of, run_and_wait

cache_app = typer.Typer(help="The stem cache index: the stem assets' latest materialization metadata.", no_args_is_help=True)
bucket_app = typer.Typer(help="The GCS bucket (delivery and shared stem cache), when this code location wires it.", no_args_is_help=True)
KINDS = {
    "names": ("name_stems", "name_stems_job"),
    "developers": ("developer_stems", "developer_stems_job"),
    "scripts": ("script_stems", "script_stems_job"),
}
KindOpt = Annotated[str | None, typer.Option("--kind", help="names, developers or scripts (default: all).")]
MAX_LISTED = 2000  # objects `bucket list` shows (the bucket admin's MAX_LISTED)
BYTES = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "pcm_s16le": 2, "pcm_s24le": 3, "pcm_s32le": 4, "pcm_f32le": 4}


def _kinds(kind: str | None) -> list[str]:
    if kind is None:
        return list(KINDS)
    if kind not in KINDS:
        fail(f"unknown kind {kind!r}: names, developers or scripts", Exit.REFUSED)
    return [kind]


def index_rows(kinds: list[str]) -> tuple[list[dict], list[dict]]:
    """(one row per stem record, one row per partition) of the latest materializations."""
    stems, parts = [], []
    for kind in kinds:
        asset = KINDS[kind][0]
        for partition, m in sorted(STATE.client.latest_materializations(asset).items()):
            md = m["metadata"]
            parts.append(
                {
                    "kind": kind,
                    "partition": partition,
                    "tts_calls": md.get("tts_calls") or 0,
                    "cache_hits": md.get("cache_hits") or 0,
                    "chars_sent": md.get("chars_sent") or 0,
                    "status": md.get("status"),
                    "run_id": m["run_id"],
                    "engine": (md.get("engine") or {}).get("engine") if isinstance(md.get("engine"), dict) else md.get("engine"),
                }
            )
            slots = {sig: slot for slot, sig in (md.get("slots") or {}).items()}
            for sig, rec in (md.get("stems") or {}).items():
                size = 44 + rec["frames"] * rec["channels"] * BYTES.get(rec.get("sample_format", ""), 2)
                stems.append(
                    {
                        "kind": kind,
                        "partition": partition,
                        "slot": slots.get(sig, ""),
                        "signature": sig,
                        "text": rec["text"],
                        "engine": rec["engine"],
                        "path": rec["path"],
                        "sha256": rec["sha256"],
                        "bytes": size,
                        "duration_s": round(rec["frames"] / rec["sample_rate"], 3),
                        "chars": rec.get("chars", len(rec["text"])),
                    }
                )
    return stems, parts


@cache_app.command("list")
def cache_list(kind: KindOpt = None, json_: JsonOpt = False) -> None:
    """Every stem record: kind, partition, slot, signature, duration, size, text."""
    as_json(json_)
    stems, _ = index_rows(_kinds(kind))
    emit(
        {"ok": True, "stems": stems},
        [
            f"{s['kind']:<10} {s['partition']:<22} {s['slot']:<24} {s['signature'][:16]}  {s['duration_s']:>5.2f}s "
            f"{s['bytes']:>8}B  {s['text']}"
            for s in stems
        ]
        or ["no stems recorded yet"],
    )


@cache_app.command("summary")
def cache_summary(json_: JsonOpt = False) -> None:
    """Totals per kind: partitions, distinct stems, audio, bytes, characters; hits and TTS calls of the latest runs."""
    as_json(json_)
    stems, parts = index_rows(list(KINDS))
    kinds = {}
    for kind in KINDS:
        mine = {s["signature"]: s for s in stems if s["kind"] == kind}
        p = [x for x in parts if x["kind"] == kind]
        kinds[kind] = {
            "partitions": len(p),
            "stems": len(mine),
            "audio_s": round(sum(s["duration_s"] for s in mine.values()), 2),
            "bytes": sum(s["bytes"] for s in mine.values()),
            "chars": sum(s["chars"] for s in mine.values()),
            "last_tts_calls": sum(x["tts_calls"] for x in p),
            "last_cache_hits": sum(x["cache_hits"] for x in p),
        }
    distinct = {s["signature"]: s for s in stems}
    total = {
        "stems": len(distinct),
        "bytes": sum(s["bytes"] for s in distinct.values()),
        "chars": sum(s["chars"] for s in distinct.values()),
        "audio_s": round(sum(s["duration_s"] for s in distinct.values()), 2),
    }
    emit(
        {"ok": True, "kinds": kinds, "total": total},
        [
            f"{k:<10} {v['partitions']:>5} partitions {v['stems']:>6} stems {v['audio_s']:>8.1f}s {v['bytes']:>10}B {v['chars']:>8} chars "
            f"(last runs: {v['last_tts_calls']} TTS calls, {v['last_cache_hits']} hits)"
            for k, v in kinds.items()
        ]
        + [f"{'total':<10} {total['stems']:>6} distinct stems, {total['audio_s']}s, {total['bytes']}B, {total['chars']} chars"],
    )


@cache_app.command("invalidate")
def cache_invalidate(
    stems: Annotated[list[str], typer.Argument(help="Signatures or unique prefixes (≥ 8 hex digits), as `cache list` shows.")],
    json_: JsonOpt = False,
) -> None:
    """Mark stems so the next stems run (e.g. `batch`) re-synthesizes exactly them."""
    as_json(json_)
    bad = [s for s in stems if len(s) < 8 or any(c not in "0123456789abcdef" for c in s.lower())]
    if bad:
        fail(f"not a stem signature (≥ 8 hex digits, as `cache list` shows): {', '.join(map(repr, bad))}", Exit.REFUSED)
    [r] = run_and_wait(
        [("invalidate_stems_job", {"run_config": {"ops": {"invalidate_stems": {"config": {"stems": stems}}}}, "tags": TRIGGER})],
        "invalidate",
    )
    done = output_of(r, "invalidate_stems").get("invalidated", [])
    emit(
        {"ok": True, "run_id": r.run_id, "invalidated": done},
        [f"invalidated {d['signature'][:16]} ({d['engine']}, {d['files']} file(s))" for d in done],
    )


@cache_app.command("bulk")
def cache_bulk(
    kind: KindOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Re-synthesize every stem (audited).")] = False,
    json_: JsonOpt = False,
) -> None:
    """Materialize every stem partition (one range run per kind): fills the cache, re-records the index."""
    as_json(json_)
    launches = []
    for k in _kinds(kind):
        asset, job = KINDS[k]
        keys = STATE.client.partition_keys(asset)
        if not keys:
            continue
        tags = {**TRIGGER, RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]} if len(keys) > 1 else TRIGGER
        kw = {"run_config": {"ops": {asset: {"config": {"force": force}}}}, "tags": tags}
        if len(keys) == 1:
            kw["partition"] = keys[0]
        launches.append((job, kw))
    if not launches:
        fail("no stem partitions registered yet; run `hybrid-audio batch` first", Exit.REFUSED)
    results = run_and_wait(launches, "stems")
    mats = [m for r in results for m in r.materializations]
    data = {
        "ok": True,
        "partitions": len(mats),
        "tts_calls": sum(m["metadata"].get("tts_calls") or 0 for m in mats),
        "cache_hits": sum(m["metadata"].get("cache_hits") or 0 for m in mats),
        "chars_sent": sum(m["metadata"].get("chars_sent") or 0 for m in mats),
        "runs": [r.run_id for r in results],
    }
    emit(data, [f"{k.replace('_', ' '):<12} {v}" for k, v in data.items() if k not in ("ok", "runs")])


# -- bucket --------------------------------------------------------------------------------------
NOT_WIRED = "GCS is not wired in this code location"


def _wired(job: str) -> None:
    if not STATE.client.has_job(job):
        fail(f"{NOT_WIRED} (no {job})", Exit.NOT_WIRED)


def _on(out: dict) -> dict:
    if out.get("enabled") is False:
        fail(out.get("status") or "GCS is off in this deployment", Exit.NOT_WIRED)
    return out


def _bucket_admin(action: str, **config) -> dict:
    _wired("bucket_admin_job")
    [r] = run_and_wait(
        [("bucket_admin_job", {"run_config": {"ops": {"bucket_admin": {"config": {"action": action, **config}}}}, "tags": TRIGGER})],
        f"bucket {action}",
    )
    return _on(output_of(r, "bucket_admin"))


# the bucket reads answer from bucket_consistency's record while nothing that writes the bucket
# or the stems ran after it: these assets' materializations and these jobs' runs
BUCKET_RECORD = "bucket_consistency"
BUCKET_WRITER_ASSETS = ("delivered_messages", "name_stems", "developer_stems", "script_stems", "suppression")
BUCKET_WRITER_JOBS = ("bucket_repair_job", "erase_name_job", "invalidate_stems_job")


def _bucket_record() -> dict | None:
    """bucket_consistency's latest metadata when no writer ran after it, else None."""
    try:
        md = STATE.client.recorded_if_fresh(BUCKET_RECORD, BUCKET_WRITER_ASSETS, BUCKET_WRITER_JOBS)
    except RemoteError:
        return None
    return md if md and isinstance(md.get("bucket_listing"), dict) and isinstance(md.get("stem_checks"), dict) else None


def _recorded_listing(prefix: str) -> dict | None:
    md = _bucket_record()
    rec = md["bucket_listing"] if md else None
    if not rec or not rec.get("complete"):
        return None
    base = rec["layout_prefix"]
    scope = f"{base}/" if base else ""
    if prefix:
        full = "/".join(p.strip("/") for p in (base, prefix) if p.strip("/"))
        if not full.startswith(scope) or full == base:
            return None  # outside what the record listed
        objects = [o for o in rec["objects"] if o["name"].startswith(full)]
    else:
        objects = rec["objects"]
    return {"enabled": True, "status": rec["status"], "count": len(objects), "objects": objects[:MAX_LISTED]}


def _recorded_check(stem: str) -> dict | None:
    md = _bucket_record()
    rec = md["stem_checks"] if md else None
    if not rec or not rec.get("complete") or len(stem) < 8:
        return None
    matches = [s for s in rec["stems"] if s.startswith(stem.lower())]
    if len(matches) != 1:
        return None  # none or several: the run says which, as before
    return {"enabled": True, "status": md["bucket_listing"]["status"], **rec["stems"][matches[0]]}


@bucket_app.command("list")
def bucket_list(
    prefix: Annotated[str, typer.Option(help="Below the layout's prefix, e.g. stems/ or output/followup-en/.")] = "", json_: JsonOpt = False
) -> None:
    """Objects in the bucket (name, size, gs:// URI)."""
    as_json(json_)
    out = (_recorded_listing(prefix) if STATE.client.has_job("bucket_admin_job") else None) or _bucket_admin("list", prefix=prefix)
    emit({"ok": True, **out}, [f"{o['size']:>9}  {o['uri']}" for o in out["objects"]] + [f"{out['count']} object(s); {out['status']}"])


@bucket_app.command("check")
def bucket_check(
    stem: Annotated[str, typer.Argument(help="A stem signature or unique prefix (≥ 8 hex digits).")], json_: JsonOpt = False
) -> None:
    """Whether one stem's files are in the bucket and intact (exit 1 when not)."""
    as_json(json_)
    out = (_recorded_check(stem) if STATE.client.has_job("bucket_admin_job") else None) or _bucket_admin("check", stem=stem)
    emit({"ok": out["in_sync"], **out}, [f"{o['state']:<8} {o['uri']}  ← {o['local']}" for o in out["objects"]])
    if not out["in_sync"]:
        raise typer.Exit(Exit.FAILED)


@bucket_app.command("consistency")
def bucket_consistency(json_: JsonOpt = False) -> None:
    """Materialize `bucket_consistency`: local stems, messages and manifests against the bucket (exit 1 when out of sync)."""
    as_json(json_)
    nodes = STATE.client.graphql('query { assetNodes(assetKeys: [{path: ["bucket_consistency"]}]) { id } }')["assetNodes"]
    if not nodes:
        fail(f"{NOT_WIRED} (no bucket_consistency asset)", Exit.NOT_WIRED)
    [r] = run_and_wait([("__ASSET_JOB", {"tags": TRIGGER, "assets": ["bucket_consistency"]})], "bucket consistency")
    md = next((m["metadata"] for m in r.materializations if m["asset"] == "bucket_consistency"), {})
    _on({"enabled": "GCS is off" not in str(md.get("status", "")), "status": md.get("status")})
    clean = md.get("status") == "clean"
    emit(
        {
            "ok": clean,
            "run_id": r.run_id,
            # the recorded listing and stem checks are what `bucket list|check` read; not repeated here
            **{k: v for k, v in md.items() if isinstance(v, (int, float, str, dict, list)) and k not in ("bucket_listing", "stem_checks")},
        },
        [f"{k}: {v}" for k, v in md.items() if isinstance(v, (int, float, str)) and len(str(v)) < 200],
    )
    if not clean:
        raise typer.Exit(Exit.FAILED)


@bucket_app.command("repair")
def bucket_repair(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what it would upload, download, regenerate.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Run `bucket_repair_job`: upload what the bucket lacks or holds damaged, download what only it has."""
    as_json(json_)
    _wired("bucket_repair_job")
    [r] = run_and_wait(
        [("bucket_repair_job", {"run_config": {"ops": {"bucket_repair": {"config": {"dry_run": dry_run}}}}, "tags": TRIGGER})],
        "bucket repair",
    )
    out = _on(next(iter(r.outputs.values()), {}))
    counts = out.get("counts") or {}
    emit(
        {"ok": True, "run_id": r.run_id, "dry_run": dry_run, **out},
        [f"{'would ' if dry_run else ''}{k}: {v}" for k, v in counts.items()] + [f"regenerate: {out.get('regenerate') or 'nothing'}"],
    )
