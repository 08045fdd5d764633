"""The benchmark suite of issue #7: ``python -m bench.run [--quick] [--out bench/results/report.json]``.

Prints a table (every figure the median of several runs, every comparison a ratio measured
in the same run) and writes a JSON report. Scenarios:

1. ``core``: the audio core (``assemble`` + ``AssembledMessage.write``) vs numpy + soundfile,
   pydub, sox/ffmpeg (when installed), on ~12 s 44.1 kHz mono 16-bit messages; outputs are
   checked byte-identical across approaches.
2. ``batch_small`` / ``batch_large``: ``run_full_batch`` through Dagster (temp sqlite
   DAGSTER_HOME, warm stems, the messages asset as one range run) for N names × 20
   developers; messages/s, Dagster bookkeeping per message, peak RSS; baselines in the same
   process on the same messages.
3. The no-op re-run of the same batch: messages checked/s, TTS calls, files rewritten.
4. ``stems_offline`` / ``stems_cartesia``: stem synthesis through Dagster, offline engine and
   Cartesia resource vs a local fake server (300 ms latency, concurrency cap 3).
5. Scaling: batch_large vs batch_small throughput and peak RSS.
6. ``tts_piper``: the piper engine's stems/s and real-time factor against espeak-ng on the
   same texts in the same process (:mod:`bench.bench_piper`; skipped without the extra).
8. ``partitions`` (issue #12, the alternative): Dagster bookkeeping per name with one partition
   per name vs name groups (:mod:`bench.partition_bench`).
7. ``scale`` (issue #12): cold stems run and no-op batch at 2k / 10k names (50k with
   ``--scale-max 50000``) on sqlite and on a throwaway Postgres server
   (:mod:`bench.scale_bench`): bookkeeping per name partition, ÷ the engine alone,
   no-op messages/s and the extrapolated 1M-message no-op, peak RSS 10k ÷ 2k.

Each Dagster scenario runs in its own process (:mod:`bench.dagster_bench`). Scratch files go
below ``--scratch`` (default: the system temp dir) and are removed as the suite goes.
Timings are never asserted by tests; targets are reported pass/fail here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import PROJECT_ROOT, environment, scratch_dir

DEFAULT_OUT = PROJECT_ROOT / "bench" / "results" / "report.json"
REPORT_SCHEMA = 1


@dataclass(frozen=True)
class Preset:
    name: str
    core_messages: int
    core_reps: int
    core_external_messages: int
    batch_small: tuple[int, int]  # names, developers
    batch_large: tuple[int, int]
    batch_reps: int
    baseline_messages: int
    stems_offline_names: int
    stems_cartesia_names: int
    stems_reps: int
    cartesia_latency: float = 0.3
    cartesia_cap: int = 3
    note: str = ""
    piper_texts: int = 40
    piper_reps: int = 3
    # scenario ``scale`` (issue #12): name counts (those <= --scale-max run), developers, templates
    scale_names: tuple[int, ...] = (2000, 10000, 50000)
    scale_max: int = 10000
    scale_developers: int = 5
    scale_templates: int = 2
    scale_stem_ms: int = 100
    scale_jobs: int = 1
    # scenario ``partitions`` (issue #12): per-name partitions vs name groups, Dagster bookkeeping only
    partitions_per_name: tuple[int, ...] = (1000,)
    partitions_grouped: tuple[int, ...] = (10000, 50000)


PRESETS = {
    # the sizes: 100 × 20 = 2,000 and 500 × 20 = 10,000 messages
    "full": Preset("full", 600, 5, 30, (100, 20), (500, 20), 3, 1000, 200, 90, 3),
    "quick": Preset(
        "quick",
        150,
        3,
        5,
        (10, 4),
        (50, 4),
        2,
        100,
        10,
        9,
        2,
        note="sizes far below the issue's: pass/fail is indicative only",
        piper_texts=12,
        piper_reps=2,
        scale_names=(200, 1000),
        scale_max=1000,
        scale_developers=2,
        partitions_per_name=(200,),
        partitions_grouped=(2000, 10000),
    ),
    # for the smoke test: structure and correctness counters only
    "tiny": Preset(
        "tiny",
        12,
        2,
        2,
        (3, 2),
        (6, 2),
        1,
        6,
        3,
        3,
        1,
        cartesia_latency=0.05,
        note="smoke-test sizes: timings are meaningless",
        piper_texts=3,
        piper_reps=1,
        scale_names=(4,),
        scale_max=4,
        scale_developers=1,
        scale_stem_ms=50,
        scale_jobs=2,
        partitions_per_name=(3,),
        partitions_grouped=(200,),
    ),
}


# --------------------------------------------------------------------------- child processes


@dataclass
class Child:
    key: str
    args: list[str]
    out: Path
    after: Child | None = None  # start only once this one has finished (and succeeded)
    proc: subprocess.Popen | None = None
    started: float = 0.0
    result: dict = field(default_factory=dict)


def _start(child: Child) -> None:
    child.started = time.perf_counter()
    child.proc = subprocess.Popen(
        [sys.executable, "-m", "bench.dagster_bench", *child.args, "--out", str(child.out)],
        cwd=str(PROJECT_ROOT),
        stdout=subprocess.DEVNULL,
    )


def _collect(child: Child, status: int, usage) -> None:
    """Record a finished child; its own rusage gives the whole process's peak RSS."""
    assert child.proc is not None
    child.proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        child.result = json.loads(child.out.read_text())
    except (OSError, ValueError) as exc:
        child.result = {"ok": False, "error": f"no report from the child process: {exc}"}
    child.result["child_exit_code"] = child.proc.returncode
    child.result["child_wall_s"] = time.perf_counter() - child.started
    child.result["child_max_rss_mb"] = usage.ru_maxrss / 1024  # KiB on Linux


def run_children(children: list[Child], jobs: int) -> None:
    """Run the children, at most ``jobs`` at once, each after its dependency."""
    pending = list(children)
    running: dict[int, Child] = {}
    while pending or running:
        for c in list(pending):
            if len(running) >= jobs:
                break
            if c.after is not None and c.after in pending + list(running.values()):
                continue
            pending.remove(c)
            if c.after is not None and not c.after.result.get("ok"):
                c.result = {"ok": False, "error": f"not run: {c.after.key} failed ({c.after.result.get('error')})"}
                continue
            _start(c)
            running[c.proc.pid] = c
        if not running:
            continue
        pid, status, usage = os.wait4(-1, 0)
        c = running.pop(pid, None)
        if c is not None:
            _collect(c, status, usage)


from bench.report import METHOD, evaluate, table  # noqa: E402  (the report half of this module)

# --------------------------------------------------------------------------- main


def run_suite(preset: Preset, scratch_base: Path | None, jobs: int, only: set[str] | None, log=print, scale_max: int | None = None) -> dict:
    started = time.perf_counter()
    report: dict = {
        "schema": REPORT_SCHEMA,
        "preset": preset.name,
        "preset_note": preset.note,
        "command": " ".join([Path(sys.executable).name, "-m", "bench.run", *sys.argv[1:]]),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_before": os.getloadavg(),
        "scenarios": {},
    }
    want = (lambda k: k in only) if only else (lambda k: True)
    with scratch_dir(scratch_base) as scratch:
        report["environment"] = environment(scratch)
        children: list[Child] = []
        setups: list[Child] = []  # untimed: they run first, side by side
        for key, (names, devs) in (("batch_small", preset.batch_small), ("batch_large", preset.batch_large)):
            if want(key) or want("batch"):
                common = ["--workdir", str(scratch / key), "--names", str(names), "--developers", str(devs)]
                setup = Child(f"{key}_setup", ["batch-setup", *common], scratch / f"{key}_setup.json")
                measure = Child(
                    key,
                    [
                        "batch-measure",
                        *common,
                        "--setup-json",
                        str(setup.out),
                        "--reps",
                        str(preset.batch_reps),
                        "--baseline-messages",
                        str(preset.baseline_messages),
                    ],
                    scratch / f"{key}.json",
                    after=setup,
                )
                setups.append(setup)
                children.append(measure)
        engines = [e for e in ("offline", "cartesia") if want(f"stems_{e}") or want("stems")]
        if engines:
            children.append(
                Child(
                    "stems",
                    [
                        "stems",
                        "--engines",
                        *engines,
                        "--workdir",
                        str(scratch / "stems"),
                        "--names",
                        str(preset.stems_offline_names),
                        "--cartesia-names",
                        str(preset.stems_cartesia_names),
                        "--developers",
                        "2",
                        "--reps",
                        str(preset.stems_reps),
                        "--latency",
                        str(preset.cartesia_latency),
                        "--cap",
                        str(preset.cartesia_cap),
                    ],
                    scratch / "stems.json",
                )
            )
        if setups:
            log(f"[setup] {', '.join(c.key for c in setups)} (untimed, in parallel) ...")
            run_children(setups, max(jobs, 2))
        if want("core"):
            from bench import core_bench

            log(f"[1] assembly core: {preset.core_messages} messages × {preset.core_reps} reps ...")
            try:
                report["scenarios"]["core"] = {
                    "ok": True,
                    **core_bench.run(
                        scratch,
                        messages=preset.core_messages,
                        reps=preset.core_reps,
                        external_messages=preset.core_external_messages,
                        verify_messages=min(8, preset.core_messages),
                        log=log,
                    ),
                }
            except Exception as exc:  # noqa: BLE001 - report and go on with the other scenarios
                import traceback

                report["scenarios"]["core"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        log(f"[2-4] Dagster scenarios ({', '.join(c.key for c in children)}), one process each, {jobs} at a time ...")
        run_children(children, jobs)
        for c in setups + children:
            if c.key.endswith("_setup"):
                if not c.result.get("ok"):
                    report["scenarios"][c.key.removesuffix("_setup")] = c.result
                continue
            if c.key == "stems":  # one process for both engines: one section each
                parts = {k: v for k, v in c.result.items() if k.startswith("stems_")}
                if not parts:
                    parts = {f"stems_{e}": dict(c.result) for e in engines}
                for k, v in parts.items():
                    v.setdefault("ok", False)
                    v["child_wall_s"] = c.result.get("child_wall_s")
                    report["scenarios"][k] = v
            else:
                report["scenarios"][c.key] = c.result
        if want("scale"):
            from bench import scale_bench

            limit = scale_max or preset.scale_max
            sizes = [n for n in preset.scale_names if n <= limit]
            log(f"[7] scale: {', '.join(f'{n:,}' for n in sizes)} names, sqlite and Postgres ...")
            try:
                report["scenarios"]["scale"] = scale_bench.run_scenario(
                    scratch,
                    sizes,
                    developers=preset.scale_developers,
                    templates=preset.scale_templates,
                    stem_ms=preset.scale_stem_ms,
                    jobs=preset.scale_jobs,
                    log=log,
                )
            except Exception as exc:  # noqa: BLE001 - report and go on
                import traceback

                report["scenarios"]["scale"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        if want("partitions"):
            from bench import partition_bench

            log(f"[8] partitions: per-name {list(preset.partitions_per_name)} vs name groups {list(preset.partitions_grouped)} ...")
            try:
                report["scenarios"]["partitions"] = partition_bench.run_scenario(
                    scratch, per_name=list(preset.partitions_per_name), grouped=list(preset.partitions_grouped), log=log
                )
            except Exception as exc:  # noqa: BLE001 - report and go on
                report["scenarios"]["partitions"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if want("tts_piper") or want("piper"):
            log(f"[6] piper vs espeak-ng: {preset.piper_texts} stems × {preset.piper_reps} reps ...")
            report["scenarios"]["tts_piper"] = _run_piper(scratch, preset)
        for k, v in report["scenarios"].items():
            if not v.get("ok"):
                log(f"  {k} FAILED: {v.get('error')}")
    small = report["scenarios"].get("batch_small", {})
    large = report["scenarios"].get("batch_large", {})
    if small.get("ok") and large.get("ok"):
        report["scaling"] = {
            "small_messages": small["messages"],
            "large_messages": large["messages"],
            "throughput_ratio": large["summary"]["messages_per_s"]["median"] / small["summary"]["messages_per_s"]["median"],
            "peak_rss_ratio": large["summary"]["peak_rss_mb"] / small["summary"]["peak_rss_mb"],
            "process_peak_rss_ratio": large["child_max_rss_mb"] / small["child_max_rss_mb"],
            "dagster_outside_body_per_message_ms": [
                small["summary"]["dagster_outside_body_per_message_ms"],
                large["summary"]["dagster_outside_body_per_message_ms"],
            ],
        }
    report["method"] = METHOD
    report["targets"] = evaluate(report)
    report["ok"] = all(v.get("ok", False) for v in report["scenarios"].values())
    report["correctness"] = {
        t["id"]: t["pass"]
        for t in report["targets"]
        if t["id"] in ("noop.tts_calls", "noop.files_rewritten", "core.byte_identical", "cartesia.max_in_flight")
    }
    report["load_average_after"] = os.getloadavg()
    report["duration_s"] = time.perf_counter() - started
    return report


def _run_piper(scratch: Path, preset: Preset) -> dict:
    """The piper scenario in its own process (onnxruntime's memory stays out of this one)."""
    out = scratch / "piper.json"
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.bench_piper",
                "--texts",
                str(preset.piper_texts),
                "--reps",
                str(preset.piper_reps),
                "--out",
                str(out),
            ],
            cwd=str(PROJECT_ROOT),
            stdout=subprocess.DEVNULL,
            timeout=1800,
            check=False,
        )
        return json.loads(out.read_text())
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return {"ok": False, "error": f"no report from bench.bench_piper: {exc}"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", const="quick", dest="preset", help="small sizes, under ~30 s")
    size.add_argument("--tiny", action="store_const", const="tiny", dest="preset", help="smoke-test sizes (structure only)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT.relative_to(PROJECT_ROOT)})")
    ap.add_argument("--scratch", type=Path, default=None, help="where temp projects and outputs go (default: system temp dir)")
    ap.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="scenarios: core batch batch_small batch_large stems stems_offline stems_cartesia tts_piper scale partitions",
    )
    ap.add_argument("--jobs", type=int, default=1, help="Dagster scenario processes at once (>1 spoils timings)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions of every scenario (overrides the preset)")
    ap.add_argument(
        "--scale-max", type=int, default=None, help="scale scenario: largest name count to run (default 10000; 50000 takes long)"
    )
    ap.add_argument(
        "--scale-developers",
        type=int,
        default=None,
        help="scale scenario: developers per project (default 5; 50 with 10000 names = the 1M-message no-op, measured)",
    )
    args = ap.parse_args(argv)
    preset = PRESETS[args.preset or "full"]
    if args.scale_developers:
        from dataclasses import replace

        preset = replace(preset, scale_developers=args.scale_developers)
    if args.reps:
        from dataclasses import replace

        preset = replace(preset, core_reps=args.reps, batch_reps=args.reps, stems_reps=args.reps)
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average {load:.2f} before starting: other processes compete for the CPU", file=sys.stderr)
    report = run_suite(
        preset,
        args.scratch,
        max(1, args.jobs),
        set(args.only) if args.only else None,
        log=lambda m: print(m, file=sys.stderr, flush=True),
        scale_max=args.scale_max,
    )
    text = table(report)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"\nreport: {args.out}  ({report['duration_s']:.0f} s, preset {preset.name})")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
