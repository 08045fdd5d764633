"""Scenarios 2-5 through Dagster, each in its own process (``python -m bench.dagster_bench``).

A child process per scenario keeps peak RSS per scenario and the machine state comparable;
the parent (:mod:`bench.run`) reads one JSON document from the child's ``--out`` file.

``batch-setup`` — a temp project (N names × D developers × the ``followup-en`` template), a
temp DAGSTER_HOME on sqlite (``deploy/dagster.yaml``), the offline engine; one untimed
``run_full_batch`` makes the stems, then the output folder is removed.
``batch-measure`` — a fresh process on that project: a warm-up batch restricted to one name
(untimed, removed), then per repetition: ``run_full_batch`` timed from an empty output
folder (warm stems: the messages range run writes every message), the same batch again
timed as the no-op re-run, the output removed (untimed), and the baselines timed in the
same process on the same messages (read back from the manifests): the core alone,
numpy + soundfile, pydub, in a rotating order. The peak RSS of the batch is the peak of the
fresh process through its first timed batch (imports + instance + warm-up + one batch).

``stems``  — stem syntheses through Dagster (:mod:`bench.stems_bench`). The probes and the
temp project and instance are :mod:`bench.probes`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

from bench.common import (
    Stopwatch,
    clear_dir,
    median,
    peak_rss_mb,
    reset_peak_rss,
    run_child,
    spread,
    synthetic_developers,
    synthetic_names,
)
from bench.probes import TEMPLATE_ID, install_probes, make_instance, mtimes, run_events
from bench.stems_bench import scenario_stems
from testkit.project import make_project

# --------------------------------------------------------------------------- baselines on the real messages


def specs_from_manifests(paths, limit: int):
    """Up to ``limit`` messages as :class:`bench.workload.MessageSpec`, read back from the
    manifests the messages asset wrote (its timelines name the stems, trims and pauses)."""
    import numpy as np

    from bench.workload import MessageSpec, Stem
    from hybrid_audio_dagster.core.audio.wav import parse_wav
    from hybrid_audio_dagster.core.messages.manifest import MANIFEST_NAME, read_manifest

    stems: dict[str, Stem] = {}
    specs: list[tuple[MessageSpec, str]] = []  # (spec, sha256 recorded in the manifest)
    for manifest in sorted(Path(paths.output).rglob(MANIFEST_NAME)):
        for row in read_manifest(manifest):
            tl = json.loads(row["timeline"])
            stem_paths = tl["stem_paths"]
            chosen = []
            for e in tl["entries"]:
                sha = e["stem_sha256"]
                if sha not in stems:
                    audio = parse_wav((Path(paths.stems) / stem_paths[sha]).read_bytes())
                    stems[sha] = Stem(sha, audio, np.frombuffer(audio.data, "<i2"), e["trim_start"], e["trim_end"])
                assert (stems[sha].trim_start, stems[sha].trim_end) == (e["trim_start"], e["trim_end"])
                assert e["crossfade_after"] == 0, "the bench template has no crossfades"
                chosen.append(stems[sha])
            spec = MessageSpec(
                tuple(chosen),
                tuple(e["segment_id"] for e in tl["entries"]),
                tuple(e["pause_after"] for e in tl["entries"][:-1]),
                tl["lead_frames"],
                tl["tail_frames"],
                tl["sample_rate"],
            )
            specs.append((spec, row["sha256"]))
            if len(specs) >= limit:
                return specs
    return specs


def run_baselines(specs_sha, work: Path, names: list[str]) -> dict[str, float]:
    """messages/s of each baseline over the given messages (files removed after, untimed)."""
    import hashlib

    from bench.approaches import APPROACHES

    specs = [s for s, _ in specs_sha]
    out: dict[str, float] = {}
    for name in names:
        write = APPROACHES[name](specs, work / "setup")
        target = work / name
        clear_dir(target)
        # byte-identity with what the asset wrote (first few messages)
        for i, (spec, sha) in enumerate(specs_sha[:3]):
            p = target / f"check{i}.wav"
            write(spec, p)
            if hashlib.sha256(p.read_bytes()).hexdigest() != sha:
                raise AssertionError(f"baseline {name} is not byte-identical to the asset's message {i}")
        clear_dir(target)
        with Stopwatch() as sw:
            for i, spec in enumerate(specs):
                write(spec, target / f"m{i}.wav")
        shutil.rmtree(target, ignore_errors=True)
        out[name] = len(specs) / sw.seconds
    return out


# --------------------------------------------------------------------------- scenario: batch


def _batch_env(args):
    from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
    from hybrid_audio_dagster.defs.resources.tts import OfflineTTSResource

    work = Path(args.workdir)
    root, home = work / "project", work / "dagster_home"
    paths = ProjectPaths(root=str(root))
    return work, root, home, paths, {"paths": paths, "tts": OfflineTTSResource()}


def scenario_batch_setup(args) -> dict:
    """Untimed, in its own process: the project, the instance, the stems (one full batch).

    Kept out of the measuring process so that the synthesis of hundreds of stems does not
    inflate its peak RSS (memory a process has touched is rarely given back).
    """
    from hybrid_audio_dagster.runner.batch import run_full_batch

    _work, root, home, paths, resources = _batch_env(args)
    make_project(root, synthetic_names(args.names), synthetic_developers(args.developers), templates=[TEMPLATE_ID])
    instance = make_instance(home)
    expected = args.names * args.developers
    with Stopwatch() as sw:
        first = run_full_batch(instance, resources)
    if first.messages_written != expected or first.messages_failed:
        raise RuntimeError(f"setup batch wrote {first.messages_written}/{expected} messages, {first.messages_failed} failed")
    msg_bytes = next(Path(paths.output).rglob("*.wav")).stat().st_size
    shutil.rmtree(paths.output)
    return {"setup_s": sw.seconds, "setup_tts_calls": first.tts_calls, "messages": expected, "message_bytes": msg_bytes}


def _rss_now_and_peak() -> tuple[float, float]:
    from bench.common import rss_mb

    return rss_mb(), peak_rss_mb()


def scenario_batch_measure(args) -> dict:
    """Timed, in a fresh process: per repetition the batch from an empty output folder
    (warm stems), the same batch again (no-op), then the baselines on the same messages."""
    import dagster as dg  # noqa: F401  (imported before the first timing)

    from hybrid_audio_dagster.runner.batch import run_full_batch

    probe = install_probes()
    work, _root, home, paths, resources = _batch_env(args)
    setup = json.loads(Path(args.setup_json).read_text()) if args.setup_json else {}
    instance = make_instance(home)
    expected = args.names * args.developers

    # warm-up (untimed): every code path once, on one name's messages, then nothing left behind
    from hybrid_audio_dagster.core.datasets.snapshot import read_snapshot

    warm_key = next(iter(read_snapshot(paths, "names")))  # the setup materialized the datasets
    with Stopwatch() as warm_sw:
        run_full_batch(instance, resources, names=[warm_key])
    shutil.rmtree(paths.output, ignore_errors=True)
    rss_after_warmup = _rss_now_and_peak()

    reps = []
    baselines: dict[str, list[float]] = {}
    specs_sha = None
    for rep in range(args.reps):
        # -- messages from scratch (empty output folder), warm stems
        probe.reset()
        fresh = rep == 0  # the first batch of a fresh process: its peak is the batch's peak RSS
        if not fresh:
            reset_peak_rss()
        with Stopwatch() as sw:
            summary = run_full_batch(instance, resources)
        peak = peak_rss_mb()
        runs = list(probe.runs)
        msg_run = next(r for r in runs if r["assets"] == ["messages"])
        ev = run_events(instance, msg_run["run_id"])
        n = summary.messages_written
        aw = probe.seconds["assemble"] + probe.seconds["write"]
        write_rec = {
            "batch_s": sw.seconds,
            "messages_run_s": msg_run["seconds"],
            "other_runs_s": sw.seconds - msg_run["seconds"],
            "runs": [{"assets": ",".join(r["assets"]), "seconds": round(r["seconds"], 4)} for r in runs],
            "written": n,
            "failed": summary.messages_failed,
            "tts_calls": summary.tts_calls,
            "synthesize_calls": probe.calls["tts_synthesize"],
            "messages_per_s": n / msg_run["seconds"],
            "batch_messages_per_s": n / sw.seconds,
            "asset_body_s": ev["asset_body_s"],
            "run_events": ev["events"],
            "per_message_calls_s": probe.seconds["per_message"],
            "assemble_s": probe.seconds["assemble"],
            "write_s": probe.seconds["write"],  # summed over threads if the asset writes in parallel
            "cache_index_read_s": probe.seconds["cache_index_read"],
            "manifest_read_s": probe.seconds["manifest_read"],
            "peak_rss_mb": peak,
            "peak_rss_fresh_process": fresh,
        }
        if n and ev["asset_body_s"] is not None:
            # Dagster's own cost: the messages run's wall time outside the asset function
            # (run/step setup, resource init, storing the events and metadata) per message
            write_rec["dagster_outside_body_per_message_ms"] = (msg_run["seconds"] - ev["asset_body_s"]) / n * 1e3
            write_rec["body_per_message_ms"] = ev["asset_body_s"] / n * 1e3
        if n:
            write_rec["assemble_write_per_message_ms"] = aw / n * 1e3
            # everything that is not the audio core (assemble + write), per message; meaningless
            # when the asset writes on several threads (the summed core time exceeds the wall time)
            write_rec["parallel_writes"] = aw > msg_run["seconds"] * 0.98
            write_rec["not_audio_core_per_message_ms"] = None if write_rec["parallel_writes"] else (msg_run["seconds"] - aw) / n * 1e3

        # -- the same batch again: nothing changed
        before = mtimes(Path(paths.output))
        probe.reset()
        reset_peak_rss()
        with Stopwatch() as sw2:
            again = run_full_batch(instance, resources)
        noop_peak = peak_rss_mb()
        after = mtimes(Path(paths.output))
        runs2 = list(probe.runs)
        msg_run2 = next(r for r in runs2 if r["assets"] == ["messages"])
        rewritten = sum(1 for p, m in after.items() if before.get(p) != m) + len(set(before) - set(after))
        noop_rec = {
            "batch_s": sw2.seconds,
            "messages_run_s": msg_run2["seconds"],
            "checked": again.messages_skipped,
            "written": again.messages_written,
            "files_rewritten": rewritten,
            "tts_calls": again.tts_calls,
            "chars_sent": again.chars_sent,
            "synthesize_calls": probe.calls["tts_synthesize"],
            "checked_per_s": again.messages_skipped / msg_run2["seconds"],
            "batch_checked_per_s": again.messages_skipped / sw2.seconds,
            "peak_rss_mb": noop_peak,
            "asset_body_s": run_events(instance, msg_run2["run_id"])["asset_body_s"],
            "runs": [{"assets": ",".join(r["assets"]), "seconds": round(r["seconds"], 4)} for r in runs2],
        }
        if specs_sha is None:
            specs_sha = specs_from_manifests(paths, min(expected, args.baseline_messages))
        msg_bytes = next(Path(paths.output).rglob("*.wav")).stat().st_size
        shutil.rmtree(paths.output, ignore_errors=True)  # untimed; baselines start from the same state

        # -- baselines: same process, same messages, rotating order (those installed)
        from bench.approaches import available

        usable = available()
        names = [b for b in args.baselines if not usable.get(b)]
        order = names[rep % len(names) :] + names[: rep % len(names)] if names else []
        base = run_baselines(specs_sha, work / "baselines", order)
        for k, v in base.items():
            baselines.setdefault(k, []).append(v)
        reps.append({"write": write_rec, "noop": noop_rec, "baselines": base})
        print(
            f"  batch {expected} rep {rep + 1}/{args.reps}: {write_rec['messages_per_s']:,.0f} msg/s "
            f"(batch {write_rec['batch_messages_per_s']:,.0f}/s), no-op {noop_rec['checked_per_s']:,.0f} checked/s "
            f"(batch {noop_rec['batch_checked_per_s']:,.0f}/s), peak {peak:.0f} MB; baselines "
            + ", ".join(f"{k} {v:,.0f}/s" for k, v in base.items()),
            file=sys.stderr,
            flush=True,
        )

    def med(path: tuple[str, str]) -> float | None:
        vals = [r[path[0]][path[1]] for r in reps if r[path[0]].get(path[1]) is not None]
        return median(vals) if vals else None

    def ratio_to(baseline: str) -> float | None:
        if baseline not in baselines:
            return None
        return median([r["write"]["messages_per_s"] / r["baselines"][baseline] for r in reps])

    spec0 = specs_sha[0][0]
    return {
        "names": args.names,
        "developers": args.developers,
        "templates": 1,
        "messages": expected,
        "message": {"bytes": msg_bytes, "seconds": round(spec0.frames / spec0.rate, 3), "sample_rate": spec0.rate},
        "output_mb": round(expected * msg_bytes / 1e6, 1),
        "setup": setup,
        "warmup_s": warm_sw.seconds,
        "rss_after_warmup_mb": rss_after_warmup[0],
        "reps": reps,
        "summary": {
            "messages_per_s": spread([r["write"]["messages_per_s"] for r in reps]),
            "batch_messages_per_s": spread([r["write"]["batch_messages_per_s"] for r in reps]),
            "messages_run_s": med(("write", "messages_run_s")),
            "batch_s": med(("write", "batch_s")),
            "dagster_outside_body_per_message_ms": med(("write", "dagster_outside_body_per_message_ms")),
            "body_per_message_ms": med(("write", "body_per_message_ms")),
            "not_audio_core_per_message_ms": med(("write", "not_audio_core_per_message_ms")),
            "assemble_write_per_message_ms": med(("write", "assemble_write_per_message_ms")),
            # the batch's peak RSS: first batch of a fresh process (imports + instance + one batch)
            "peak_rss_mb": reps[0]["write"]["peak_rss_mb"],
            "peak_rss_later_reps_mb": med(("write", "peak_rss_mb")),
            "noop_checked_per_s": spread([r["noop"]["checked_per_s"] for r in reps]),
            "noop_batch_checked_per_s": spread([r["noop"]["batch_checked_per_s"] for r in reps]),
            "noop_messages_run_s": med(("noop", "messages_run_s")),
            "noop_batch_s": med(("noop", "batch_s")),
            "noop_tts_calls": sum(r["noop"]["tts_calls"] for r in reps),
            "noop_synthesize_calls": sum(r["noop"]["synthesize_calls"] for r in reps),
            "noop_files_rewritten": sum(r["noop"]["files_rewritten"] for r in reps),
            "noop_written": sum(r["noop"]["written"] for r in reps),
            "noop_peak_rss_mb": med(("noop", "peak_rss_mb")),
            "write_tts_calls": sum(r["write"]["tts_calls"] for r in reps),
            "baselines_messages_per_s": {k: spread(v) for k, v in baselines.items()},
            "baseline_messages": len(specs_sha),
            "vs_pydub": ratio_to("pydub"),
            "vs_numpy_soundfile": ratio_to("numpy_soundfile"),
            "vs_core": ratio_to("core"),
        },
    }


# --------------------------------------------------------------------------- entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=["batch-setup", "batch-measure", "stems"])
    ap.add_argument("--setup-json", default=None, help="batch-measure: the batch-setup report")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--names", type=int, default=100)
    ap.add_argument("--name-offset", type=int, default=0)
    ap.add_argument("--developers", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--baseline-messages", type=int, default=2000)
    ap.add_argument("--baselines", nargs="*", default=["core", "numpy_soundfile", "pydub"])
    ap.add_argument("--engines", nargs="+", choices=["offline", "cartesia"], default=["offline", "cartesia"])
    ap.add_argument("--cartesia-names", type=int, default=90)
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--cap", type=int, default=3)
    args = ap.parse_args(argv)
    os.environ.setdefault("DAGSTER_HOME", str(Path(args.workdir) / "dagster_home"))
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("dagster").setLevel(logging.WARNING)
    run = {"batch-setup": scenario_batch_setup, "batch-measure": scenario_batch_measure, "stems": scenario_stems}
    return run_child(args.out, lambda: run[args.scenario](args))


if __name__ == "__main__":
    sys.exit(main())
