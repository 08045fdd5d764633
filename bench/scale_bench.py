"""Scenario ``scale`` (issue #12 item 5, bookkeeping at scale): one child process per
(storage backend, N names), ``python -m bench.scale_bench --home H --workdir W --names N ...``.

The parent (:mod:`bench.run`) prepares the Dagster home: sqlite (``deploy/dagster.yaml``) or
Postgres (``deploy/dagster.postgres.yaml`` over a database of a throwaway server it started,
written by ``testkit.postgres.write_postgres_home``). In the child, on a fresh project of N names ×
D developers × 2 tiny bench templates, with an instant fake TTS engine
(:mod:`bench.scale_project`):

1. ``run_full_batch`` from cold, timed per run (``hybrid_audio_dagster.runner.batch._execute`` is
   wrapped). The name-stems run(s): wall time, the asset body's own time
   (``materialize_stems`` wrapped, as :class:`bench.probes.Probe` does) and so the
   Dagster bookkeeping per name partition = (run wall − body) / partitions, where Dagster's
   ``add_asset_metadata`` inside the body counts as bookkeeping (:class:`RunProbe`).
2. The engine alone: the same (text, voice) pairs the runs synthesized, replayed through a
   fresh engine in the same process (no Dagster, no store): stems/s, and the ratio.
3. ``run_full_batch`` again with nothing changed (the no-op batch): seconds, messages
   checked/s (whole batch), TTS calls (must be 0), the messages run's share; baseline in the
   same process: ``os.stat`` of every message WAV (the floor of any up-to-date check).
   The 1M-message figure is measured when the batch covers 1M messages (``--developers 50``
   at 10,000 names), else extrapolated and labelled so: the non-message part of the batch
   (datasets, stems planning over N names) kept, the messages run scaled linearly.
4. Peak RSS (VmHWM) of the cold batch and of the no-op batch, RSS after imports beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
import warnings
from pathlib import Path

from bench.common import PROJECT_ROOT, peak_rss_mb, reset_peak_rss, rss_mb, run_child
from bench.scale_project import CALLS, instant_resource_class, make_synthetic_project

ONE_MILLION = 1_000_000

# --------------------------------------------------------------------------- instrumentation


class RunProbe:
    """Wall time of every stage run of the batch, of each stems asset body by kind, and of
    Dagster's ``add_asset_metadata`` inside them.

    ``add_asset_metadata(partition_key=...)`` is called from the asset body but is Dagster's
    bookkeeping: it validates the key against the run's range by loading every dynamic
    partition of the asset from storage, so it costs O(partitions) per call. It is counted
    as bookkeeping, not as the body's work.
    """

    def __init__(self) -> None:
        import dagster as dg

        import hybrid_audio_dagster.defs.stems.assets as stems_mod
        import hybrid_audio_dagster.runner.batch as batch_mod

        self.runs: list[dict] = []
        self.body_s: dict[str, float] = {}
        self.add_metadata_s = 0.0
        self._lock = threading.Lock()
        orig_execute, orig_body = batch_mod._execute, stems_mod.materialize_stems
        orig_add = dg.AssetExecutionContext.add_asset_metadata
        probe = self

        def execute(defs, instance, request, quiet):
            t, m = time.perf_counter(), probe.add_metadata_s
            res = orig_execute(defs, instance, request, quiet)
            probe.runs.append(
                {
                    "job": request.job_name,
                    "seconds": time.perf_counter() - t,
                    "run_id": res.run_id,
                    "partitions": len(res.get_asset_materialization_events()),
                    "add_asset_metadata_s": probe.add_metadata_s - m,
                }
            )
            return res

        def add_asset_metadata(context, *args, **kwargs):
            t = time.perf_counter()
            try:
                return orig_add(context, *args, **kwargs)
            finally:
                with probe._lock:
                    probe.add_metadata_s += time.perf_counter() - t

        def body(context, kind, *args, **kwargs):
            t = time.perf_counter()
            try:
                return orig_body(context, kind, *args, **kwargs)
            finally:
                with probe._lock:
                    probe.body_s[kind.value] = probe.body_s.get(kind.value, 0.0) + time.perf_counter() - t

        batch_mod._execute = execute
        stems_mod.materialize_stems = body
        dg.AssetExecutionContext.add_asset_metadata = add_asset_metadata  # bench child only: timing, same behaviour

    def reset(self) -> None:
        self.runs.clear()
        self.body_s.clear()

    def seconds(self, job: str) -> float:
        return sum(r["seconds"] for r in self.runs if r["job"] == job)

    def partitions(self, job: str) -> int:
        return sum(r["partitions"] for r in self.runs if r["job"] == job)

    def add_metadata(self, job: str) -> float:
        return sum(r["add_asset_metadata_s"] for r in self.runs if r["job"] == job)


def messages_body_s(instance, run_id: str) -> float | None:
    """The messages asset's own time, from its '... partitions ... in X.XXs' log line."""
    for e in instance.all_logs(run_id):
        m = re.search(r" in (\d+(?:\.\d+)?)s$", e.user_message or "")
        if e.dagster_event is None and m and "partitions" in (e.user_message or ""):
            return float(m.group(1))
    return None


def wav_paths(root: Path) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        out.extend(os.path.join(dirpath, f) for f in files if f.endswith(".wav"))
    return out


# --------------------------------------------------------------------------- the scenario


def run(args) -> dict:
    import dagster as dg

    from hybrid_audio_dagster.defs.resources.budget import SpendGuardResource
    from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
    from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
    from hybrid_audio_dagster.runner.batch import run_full_batch

    rss_imports = rss_mb()
    work = Path(args.workdir)
    root = work / "project"
    make_synthetic_project(root, args.names, args.developers, args.templates)
    paths = ProjectPaths(root=str(root))
    tts_cls = instant_resource_class()
    resources = {"paths": paths, "tts": tts_cls(stem_ms=args.stem_ms), "spend_guard": SpendGuardResource(), "gcs": DeliveryResource()}
    probe = RunProbe()
    out: dict = {
        "backend": args.backend,
        "names": args.names,
        "developers": args.developers,
        "templates": args.templates,
        "messages": args.names * args.developers * args.templates,
        "stem_ms": args.stem_ms,
        "rss_after_imports_mb": rss_imports,
    }
    with dg.DagsterInstance.from_config(args.home) as instance:
        # -- 1. cold: every stem synthesized (instantly), every message written
        CALLS.clear()
        reset_peak_rss()
        t0 = time.perf_counter()
        cold = run_full_batch(instance, resources)
        cold_s = time.perf_counter() - t0
        cold_peak = peak_rss_mb()
        name_run_s = probe.seconds("name_stems_job")
        name_parts = probe.partitions("name_stems_job")
        stem_jobs = ("name_stems_job", "developer_stems_job", "script_stems_job")
        # the bodies' own work: Dagster's add_asset_metadata inside them is bookkeeping
        name_meta = probe.add_metadata("name_stems_job")
        name_body = probe.body_s.get("name", 0.0) - name_meta
        stems_run_s = sum(probe.seconds(j) for j in stem_jobs)
        stem_parts = sum(probe.partitions(j) for j in stem_jobs)
        stems_body = sum(probe.body_s.values()) - sum(probe.add_metadata(j) for j in stem_jobs)
        msg_run = [r for r in probe.runs if r["job"] == "messages_job"]
        calls = list(CALLS)
        if cold.messages_written != out["messages"] or cold.messages_failed:
            raise RuntimeError(f"cold batch wrote {cold.messages_written} of {out['messages']} messages ({cold.messages_failed} failed)")
        if name_parts != args.names:
            raise RuntimeError(f"the name stems runs materialized {name_parts} partitions, expected {args.names}")
        # -- 2. the engine alone, same process, same stems
        engine = tts_cls(stem_ms=args.stem_ms)
        t0 = time.perf_counter()
        for text, voice in calls:
            engine.synthesize(text, voice)
        engine_s = time.perf_counter() - t0
        stems_per_s = len(calls) / stems_run_s
        engine_per_s = len(calls) / engine_s
        out["cold"] = {
            "batch_s": cold_s,
            "runs": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in probe.runs],
            "stem_runs": cold.stem_runs,
            "tts_calls": cold.tts_calls,
            "synthesize_calls": len(calls),
            "stems_runs_s": stems_run_s,
            "stems_body_s": stems_body,
            "stem_partitions": stem_parts,
            "name_stems_run_s": name_run_s,
            "name_stems_body_s": name_body,
            "name_partitions": name_parts,
            "name_stems_add_metadata_s": name_meta,
            "bookkeeping_per_name_partition_ms": (name_run_s - name_body) / name_parts * 1e3,
            "add_metadata_per_name_partition_ms": name_meta / name_parts * 1e3,
            "bookkeeping_per_stem_partition_ms": (stems_run_s - stems_body) / stem_parts * 1e3,
            "stems_per_s": stems_per_s,
            "engine_alone_s": engine_s,
            "engine_alone_stems_per_s": engine_per_s,
            "vs_engine_alone": stems_per_s / engine_per_s,  # Dagster stems/s ÷ engine-alone stems/s
            "body_vs_run": (name_body / name_run_s) if name_run_s else None,
            "messages_run_s": sum(r["seconds"] for r in msg_run),
            "peak_rss_mb": cold_peak,
        }
        print(
            f"  scale {args.backend} {args.names}: cold stems {stems_run_s:.1f}s ({len(calls)} stems, "
            f"{out['cold']['bookkeeping_per_name_partition_ms']:.2f} ms/name partition), engine alone {engine_s:.3f}s; "
            f"batch {cold_s:.1f}s",
            file=sys.stderr,
            flush=True,
        )
        # -- 3. the no-op batch
        files = wav_paths(Path(paths.output))
        before = {p: os.stat(p).st_mtime_ns for p in files}
        probe.reset()
        CALLS.clear()
        reset_peak_rss()
        t0 = time.perf_counter()
        again = run_full_batch(instance, resources)
        noop_s = time.perf_counter() - t0
        noop_peak = peak_rss_mb()
        after = {p: os.stat(p).st_mtime_ns for p in wav_paths(Path(paths.output))}
        rewritten = sum(1 for p, m in after.items() if before.get(p) != m) + len(set(before) - set(after))
        msg_s = probe.seconds("messages_job")
        msg_ids = [r["run_id"] for r in probe.runs if r["job"] == "messages_job"]
        body = messages_body_s(instance, msg_ids[0]) if msg_ids else None
        # baseline: stat every message file (what any up-to-date check must at least do)
        t0 = time.perf_counter()
        for p in files:
            os.stat(p)
        stat_s = time.perf_counter() - t0
        checked = again.messages_skipped
        fixed_s = noop_s - msg_s  # datasets + stems planning (N names) + recovery: does not grow with developers
        measured = checked >= ONE_MILLION  # e.g. --names 10000 --developers 50: no extrapolation at all
        # an upper bound: the messages run's own fixed part (loading N names' stem records) is scaled too
        extrapolated = noop_s if measured else fixed_s + msg_s * ONE_MILLION / max(1, checked)
        out["noop"] = {
            "batch_s": noop_s,
            "runs": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in probe.runs],
            "checked": checked,
            "written": again.messages_written,
            "files_rewritten": rewritten,
            "tts_calls": again.tts_calls,
            "synthesize_calls": len(CALLS),
            "stem_runs": again.stem_runs,
            "checked_per_s": checked / noop_s,
            "messages_run_s": msg_s,
            "messages_body_s": body,
            "messages_run_checked_per_s": checked / msg_s if msg_s else None,
            "outside_messages_run_s": fixed_s,
            "stat_baseline_s": stat_s,
            "stat_baseline_per_s": len(files) / stat_s if stat_s else None,
            "vs_stat_baseline": (checked / noop_s) / (len(files) / stat_s) if stat_s else None,
            "noop_1m_s": extrapolated,
            "noop_1m_measured": measured,
            "extrapolated_1m_linear_s": ONE_MILLION / (checked / noop_s),
            "extrapolation": (
                f"MEASURED: {checked:,} messages in {noop_s:.2f} s"
                if measured
                else f"EXTRAPOLATED, not measured: {fixed_s:.2f} s outside the messages run (datasets, stems "
                f"planning over {args.names:,} names; kept as is) + the messages run {msg_s:.2f} s × "
                f"{ONE_MILLION:,}/{checked:,} (scaled linearly with messages: an upper bound)"
            ),
            "peak_rss_mb": noop_peak,
        }
        out["message_bytes"] = os.stat(files[0]).st_size if files else 0
        out["output_mb"] = round(sum(os.stat(p).st_size for p in files) / 1e6, 1)
        out["peak_rss_mb"] = max(cold_peak, noop_peak)
        print(
            f"  scale {args.backend} {args.names}: no-op {noop_s:.1f}s, {checked:,} messages checked "
            f"({checked / noop_s:,.0f}/s); 1M {'measured' if measured else 'extrapolated'} {extrapolated:.0f}s; peak RSS {out['peak_rss_mb']:.0f} MB",
            file=sys.stderr,
            flush=True,
        )
    return out


# --------------------------------------------------------------------------- the parent side


def run_scenario(scratch: Path, sizes: list[int], *, developers: int, templates: int, stem_ms: int, jobs: int = 1, log=print) -> dict:
    """Every (backend, N) child; Postgres on a throwaway server started here (skipped, with
    the reason, when its binaries are missing). Returns the ``scale`` section of the report."""
    import shutil
    import subprocess

    sys.path.insert(0, str(PROJECT_ROOT))
    from testkit.postgres import PgServer, pg_bindir, write_postgres_home

    section: dict = {
        "ok": True,
        "sizes": sizes,
        "developers": developers,
        "templates": templates,
        "stem_ms": stem_ms,
        "backends": {},
        "skipped": {},
    }
    server = None
    backends = ["sqlite", "postgres"]
    bindir = pg_bindir()
    if bindir is None:
        section["skipped"]["postgres"] = (
            "PostgreSQL server binaries not installed (no /usr/lib/postgresql/*/bin/initdb; "
            "apt-get install -y postgresql): Postgres figures not measured"
        )
        backends.remove("postgres")
    else:
        try:
            server = PgServer(bindir)
            server.start()
            section["postgres_startup_s"] = server.startup_s
        except Exception as exc:  # noqa: BLE001 - report, measure sqlite anyway
            section["skipped"]["postgres"] = f"could not start a throwaway PostgreSQL server: {exc}"
            backends.remove("postgres")
            if server is not None:
                server.stop()
            server = None
    try:
        todo: list[tuple[str, int, list[str], Path]] = []
        for n in sizes:
            for backend in backends:
                key = f"{backend}_{n}"
                work = scratch / f"scale_{key}"
                home = work / "dagster_home"
                if backend == "sqlite":
                    home.mkdir(parents=True, exist_ok=True)
                    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
                else:
                    write_postgres_home(home, server.create_database(f"scale_{n}"))
                out = work / "result.json"
                cmd = [
                    sys.executable,
                    "-m",
                    "bench.scale_bench",
                    "--backend",
                    backend,
                    "--home",
                    str(home),
                    "--workdir",
                    str(work),
                    "--out",
                    str(out),
                    "--names",
                    str(n),
                    "--developers",
                    str(developers),
                    "--templates",
                    str(templates),
                    "--stem-ms",
                    str(stem_ms),
                ]
                todo.append((key, n, cmd, out))
        running: dict[int, tuple] = {}
        while todo or running:
            while todo and len(running) < max(1, jobs):
                key, n, cmd, out = todo.pop(0)
                log(f"[scale] {key}: {n:,} names × {developers} developers × {templates} templates ...")
                proc = subprocess.Popen(cmd, cwd=str(PROJECT_ROOT), stdout=subprocess.DEVNULL)
                running[proc.pid] = (key, n, proc, out, time.perf_counter())
            pid, status, usage = os.wait4(-1, 0)
            if pid not in running:
                continue
            key, n, proc, out, started = running.pop(pid)
            proc.returncode = os.waitstatus_to_exitcode(status)
            try:
                res = json.loads(out.read_text())
            except (OSError, ValueError) as exc:
                res = {"ok": False, "error": f"no report from the child process: {exc}"}
            res["child_exit_code"] = proc.returncode
            res["child_wall_s"] = time.perf_counter() - started
            res["child_max_rss_mb"] = usage.ru_maxrss / 1024
            backend = key.split("_")[0]
            section["backends"].setdefault(backend, {})[str(n)] = res
            shutil.rmtree(out.parent, ignore_errors=True)  # outputs gone as the suite goes
            if not res.get("ok"):
                section["ok"] = False
                log(f"  scale {key} FAILED: {res.get('error')}")
    finally:
        if server is not None:
            server.stop()
    section["summary"] = summarize(section)
    return section


def summarize(section: dict) -> dict:
    """Per backend: the figures at each size, the memory ratio largest ÷ smallest, and the
    Postgres ÷ sqlite ratios at each size (all from this run)."""
    out: dict = {}
    for backend, by_n in section["backends"].items():
        ok = {int(n): r for n, r in by_n.items() if r.get("ok")}
        rows = {}
        for n, r in sorted(ok.items()):
            c, z = r["cold"], r["noop"]
            rows[str(n)] = {
                "cold_stems_s": c["stems_runs_s"],
                "name_stems_run_s": c["name_stems_run_s"],
                "bookkeeping_per_name_partition_ms": c["bookkeeping_per_name_partition_ms"],
                "add_metadata_per_name_partition_ms": c["add_metadata_per_name_partition_ms"],
                "stems_per_s": c["stems_per_s"],
                "engine_alone_stems_per_s": c["engine_alone_stems_per_s"],
                "vs_engine_alone": c["vs_engine_alone"],
                "noop_s": z["batch_s"],
                "noop_messages": z["checked"],
                "noop_checked_per_s": z["checked_per_s"],
                "noop_vs_stat_baseline": z["vs_stat_baseline"],
                "noop_1m_s": z["noop_1m_s"],
                "noop_1m_measured": z["noop_1m_measured"],
                "noop_tts_calls": z["tts_calls"] + z["synthesize_calls"],
                "noop_files_rewritten": z["files_rewritten"] + z["written"],
                "peak_rss_mb": r["peak_rss_mb"],
            }
        entry: dict = {"by_names": rows}
        if len(ok) >= 2:
            lo, hi = min(ok), max(ok)
            entry["memory_ratio"] = {
                "names": [lo, hi],
                "peak_rss_ratio": ok[hi]["peak_rss_mb"] / ok[lo]["peak_rss_mb"],
                "names_ratio": hi / lo,
            }
        out[backend] = entry
    if "sqlite" in out and "postgres" in out:
        out["postgres_vs_sqlite"] = {
            n: {
                "bookkeeping_per_name_partition": p["bookkeeping_per_name_partition_ms"] / s["bookkeeping_per_name_partition_ms"],
                "noop_s": p["noop_s"] / s["noop_s"],
            }
            for n, p in out["postgres"]["by_names"].items()
            if (s := out["sqlite"]["by_names"].get(n))
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", required=True, choices=["sqlite", "postgres"])
    ap.add_argument("--home", required=True, help="DAGSTER_HOME holding the dagster.yaml to use")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--names", type=int, default=2000)
    ap.add_argument("--developers", type=int, default=5)
    ap.add_argument("--templates", type=int, default=2)
    ap.add_argument("--stem-ms", type=int, default=100)
    args = ap.parse_args(argv)
    os.environ["DAGSTER_HOME"] = args.home
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("dagster").setLevel(logging.WARNING)
    return run_child(args.out, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
