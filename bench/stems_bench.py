"""Scenario ``stems`` (run as ``python -m bench.dagster_bench stems``): stem syntheses through
Dagster, ``name_stems`` over N names with ``force`` (every slot re-synthesized), with the
offline engine or with the Cartesia resource against the fake server (:mod:`bench.fake_server`,
its own process) at a given latency and cap.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import traceback
from pathlib import Path

from bench.common import PROJECT_ROOT, Stopwatch, median, spread, synthetic_developers, synthetic_names
from bench.probes import TEMPLATE_ID, Probe, install_probes, make_instance, run_events
from testkit.project import make_project

# --------------------------------------------------------------------------- scenario: stems


def _start_fake_server(latency: float, cap: int):
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_server", "--latency", str(latency), "--cap", str(cap)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(PROJECT_ROOT),
    )
    hello = json.loads(proc.stdout.readline())

    def ask(cmd: str) -> dict:
        proc.stdin.write(cmd + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    return proc, hello["base_url"], ask


def scenario_stems(args) -> dict:
    """Each engine of ``args.engines`` in turn, each with its own project and instance."""
    probe = install_probes()
    out: dict = {}
    for engine in args.engines:
        names = args.cartesia_names if engine == "cartesia" else args.names
        try:
            out[f"stems_{engine}"] = {"ok": True, **_stems_one(args, probe, engine, names)}
        except Exception as exc:  # noqa: BLE001 - reported in the JSON, the other engine still runs
            out[f"stems_{engine}"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    return out


def _stems_one(args, probe: Probe, engine: str, n_names: int) -> dict:
    import dagster as dg

    from hybrid_audio_dagster.definitions import defs as code_location
    from hybrid_audio_dagster.defs.tags import RANGE_END_TAG as ASSET_PARTITION_RANGE_END_TAG
    from hybrid_audio_dagster.defs.tags import RANGE_START_TAG as ASSET_PARTITION_RANGE_START_TAG

    ALL = [*code_location.assets, *code_location.asset_checks]
    from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
    from hybrid_audio_dagster.defs.resources.tts import (
        CartesiaTTSResource,
        OfflineTTSResource,
    )

    work = Path(args.workdir) / engine
    root, home = work / "project", work / "dagster_home"
    make_project(root, synthetic_names(n_names, offset=args.name_offset), synthetic_developers(args.developers), templates=[TEMPLATE_ID])
    instance = make_instance(home)
    paths = ProjectPaths(root=str(root))
    proc = None
    ask = None
    if engine == "cartesia":
        proc, base_url, ask = _start_fake_server(args.latency, args.cap)
        tts = CartesiaTTSResource(api_key="bench-key", base_url=base_url, max_concurrency=args.cap, max_retries=2)
    else:
        tts = OfflineTTSResource()
    from hybrid_audio_dagster.defs.resources.budget import SpendGuardResource
    from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource

    resources = {"paths": paths, "tts": tts, "spend_guard": SpendGuardResource(), "gcs": DeliveryResource()}  # GCS off
    by_name = {k.to_user_string(): a for a in ALL for k in getattr(a, "keys", ())}

    def materialize(asset: str, keys: list[str] | None, force: bool):
        tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]} if keys else {}
        cfg = {"ops": {asset: {"config": {"force": force}}}} if keys else {}
        cfg["loggers"] = {"console": {"config": {"log_level": "WARNING"}}}
        return dg.materialize(
            ALL, selection=[by_name[asset]], instance=instance, resources=resources, tags=tags, run_config=cfg, raise_on_error=True
        )

    try:
        # warm-up (untimed): datasets, then the developer and script stems (a few real calls)
        materialize("names_dataset", None, False)
        materialize("developers_dataset", None, False)
        materialize("message_templates", None, False)
        for asset, pdef in (("developer_stems", "developers"), ("script_stems", "templates")):
            materialize(asset, instance.get_dynamic_partitions(pdef), False)
        keys = instance.get_dynamic_partitions("names")
        reps = []
        for rep in range(args.reps):
            if ask:
                ask("reset")
            probe.reset()
            with Stopwatch() as sw:
                res = materialize("name_stems", keys, True)
            calls = 0
            for event in res.get_asset_materialization_events():
                calls += event.materialization.metadata["tts_calls"].value
            server = ask("stats") if ask else {}
            body_s = None
            for e in instance.all_logs(res.run_id):
                m = re.search(r"distinct stems: .*, (\d+(?:\.\d+)?)s$", e.user_message or "")
                if e.dagster_event is None and m:
                    body_s = float(m.group(1))
            ev = run_events(instance, res.run_id)
            rec = {
                "run_s": sw.seconds,
                "asset_body_s": body_s,  # the stems asset's own timing (syntheses + store), from its log line
                "step_s": ev["step_s"],
                "events": ev["events"],
                "tts_calls": calls,
                "synthesize_calls": probe.calls["tts_synthesize"],
                "synthesize_s": probe.seconds["tts_synthesize"],
                "stems_per_s": calls / sw.seconds,
                **({"server": server} if server else {}),
            }
            reps.append(rec)
            extra = f", max in flight {server['max_in_flight']}, statuses {server['statuses']}" if server else ""
            print(
                f"  stems {engine} rep {rep + 1}/{args.reps}: {calls} stems in {sw.seconds:.2f}s = {rec['stems_per_s']:.1f}/s{extra}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        if proc is not None:
            with contextlib.suppress(Exception):  # the server may be gone already
                ask("quit")
            proc.wait(timeout=10)

    out = {
        "engine": engine,
        "names": n_names,
        "reps": reps,
        "summary": {
            "stems_per_s": spread([r["stems_per_s"] for r in reps]),
            "tts_calls_per_run": median([r["tts_calls"] for r in reps]),
            "run_s": median([r["run_s"] for r in reps]),
            "synthesize_s_per_stem": median([r["synthesize_s"] / max(1, r["synthesize_calls"]) for r in reps]),
            "asset_body_s": median([r["asset_body_s"] for r in reps if r["asset_body_s"] is not None] or [float("nan")]),
            "outside_body_s": median([r["run_s"] - r["asset_body_s"] for r in reps if r["asset_body_s"] is not None] or [float("nan")]),
        },
    }
    if engine == "cartesia":
        ideal = args.cap / args.latency
        out["latency_s"] = args.latency
        out["cap"] = args.cap
        out["summary"].update(
            {
                "ideal_stems_per_s": ideal,
                "fraction_of_ideal": median([r["stems_per_s"] / ideal for r in reps]),
                # the resource alone: stems/s inside the asset function (no Dagster run/event costs)
                "body_fraction_of_ideal": median(
                    [r["tts_calls"] / r["asset_body_s"] / ideal for r in reps if r["asset_body_s"]] or [float("nan")]
                ),
                # the fixed cost of one Dagster run, paid once per run whatever its size
                "ideal_run_s": median([r["tts_calls"] for r in reps]) / ideal,
                "max_in_flight": max(r["server"]["max_in_flight"] for r in reps),
                "requests": sum(r["server"]["tts_requests"] for r in reps),
                "rejected_429": sum(r["server"]["statuses"].get("429", 0) for r in reps),
            }
        )
    return out
