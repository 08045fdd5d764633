"""``rotation``: thin commands over the rotation code.

The reads (``status``, ``next-pair``, ``stream``, ``next-script``) answer from the
``rotation_outlook`` asset's latest metadata, which every run that moves the rotation or its
inputs records, in one GraphQL round trip and no run. Only when an input
(``OUTLOOK_INPUTS``) was recorded after it, or it was never recorded, or ``stream`` asks for
more pairs than it holds, do they launch the reading ``rotation_admin_job`` run as before.
``generate-pair`` advances (a run)."""

from __future__ import annotations

from typing import Annotated

import typer

from hybrid_audio_dagster.cli.client import RANGE_END_TAG, RANGE_START_TAG, RemoteError
from hybrid_audio_dagster.cli.common import STATE, TRIGGER, Exit, JsonOpt, as_json, emit, fail, output_of, run_and_wait
from hybrid_audio_dagster.cli.messages import message_info

rotation_app = typer.Typer(help="The deterministic name × developer rotation.", no_args_is_help=True)


def _admin(action: str, **config) -> dict:
    [r] = run_and_wait(
        [("rotation_admin_job", {"run_config": {"ops": {"rotation_admin": {"config": {"action": action, **config}}}}, "tags": TRIGGER})],
        f"rotation {action}",
    )
    return output_of(r, "rotation_admin")


OUTLOOK = "rotation_outlook"  # defs/rotation/outlook.py
OUTLOOK_INPUTS = ("suppression", "names_dataset", "developers_dataset", "message_templates", "rotation_advance")
OUTLOOK_ONLY = ("available", "next_pairs", "next_script")  # not part of the status


def _recorded() -> dict | None:
    """The outlook's latest metadata when no input was recorded after it, else None."""
    try:
        md = STATE.client.recorded_if_fresh(OUTLOOK, OUTLOOK_INPUTS)
    except RemoteError:
        return None  # a code location without the outlook: ask a run
    return md if md and md.get("available") and md.get("next_pairs") else None


def _line(p: dict) -> str:
    return f"{p['name']:<20} × {p['developer']:<24} {p['template']:<16} (cycle {p['cycle']}, #{p['position']})"


@rotation_app.command("status")
def status(json_: JsonOpt = False) -> None:
    """Cycle, progress, retry ledger (reads only)."""
    as_json(json_)
    md = _recorded()
    out = {k: v for k, v in md.items() if k not in OUTLOOK_ONLY} if md else _admin("status")
    lines = [
        f"{k}: {v}"
        for k, v in out.items()
        if k
        in ("cycle", "cursor", "cycle_length", "progress_pct", "remaining", "last_pair", "advances", "retry_pending", "retry_outstanding")
    ]
    # the per-variant counts of the A/B stream: this cycle, then all time
    this, total = out.get("template_counts") or {}, out.get("template_counts_total") or {}
    lines += [
        f"template {k}: {this.get(k, 0)} this cycle, {total.get(k, 0)} in all"
        for k in list(out.get("rotation_templates") or []) + sorted(set(total) - set(out.get("rotation_templates") or []))
    ]
    emit({"ok": True, **out}, lines)


@rotation_app.command("next-pair")
def next_pair(json_: JsonOpt = False) -> None:
    """The pair the rotation hands out next (no advance)."""
    as_json(json_)
    md = _recorded()
    out = {"pair": md["next_pairs"][0]} if md else _admin("next-pair")
    emit({"ok": True, **out}, _line(out["pair"]))


@rotation_app.command("stream")
def stream(limit: Annotated[int, typer.Option("--limit", "-n", help="How many pairs.")] = 10, json_: JsonOpt = False) -> None:
    """The next LIMIT pairs, in order (no advance)."""
    as_json(json_)
    md = _recorded()
    n = max(1, min(limit, 1000))
    out = {"pairs": md["next_pairs"][:n]} if md and n <= len(md["next_pairs"]) else _admin("stream", limit=limit)
    emit({"ok": True, **out}, [_line(p) for p in out["pairs"]])


@rotation_app.command("next-script")
def next_script(json_: JsonOpt = False) -> None:
    """The next pair's script: every segment's text as it will be spoken (no advance)."""
    as_json(json_)
    md = _recorded()
    out = {"pair": md["next_pairs"][0], "script": md["next_script"]} if md else _admin("next-script")
    emit({"ok": True, **out}, [_line(out["pair"])] + [f"  {s['segment']:<10} {s['text']}" for s in out["script"]])


@rotation_app.command("generate-pair")
def generate_pair(
    request_id: Annotated[str | None, typer.Option(help="Idempotency key: the same id returns the same pair.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Advance the rotation by one pair and build its message now; prints its path."""
    as_json(json_)
    out = _admin("generate-pair", request_id=request_id or "")
    if not out["ready"]:
        fail(f"{out['name']} × {out['developer']}: {out['problem']} (the pair waits in the retry ledger)", Exit.FAILED)
    req = out["run"]
    key = req["partition"]
    [run] = run_and_wait(
        [(req["job"], {"run_config": req["run_config"], "tags": {**req["tags"], **TRIGGER, RANGE_START_TAG: key, RANGE_END_TAG: key}})],
        "messages",
    )
    md = next((m["metadata"] for m in run.materializations if m["asset"] == "messages"), {})
    described = (md.get("described") or {}).get(out["name"])  # the run restricted to the pair's name describes it
    info = dict(described) if described else message_info(out["template"], out["developer"], out["name"])
    info.pop("timeline", None)
    emit(
        {"ok": info["verified"], **{k: out[k] for k in ("name", "developer", "template")}, **info},
        f"{out['name']} × {out['developer']} ({out['template']}): {info['path']}  {info['duration_s']:.2f}s",
    )
    if not info["verified"]:
        raise typer.Exit(Exit.FAILED)
