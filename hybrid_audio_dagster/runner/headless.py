"""The in-process commands behind ``make init`` / ``make batch`` / ``make run``: they run the
code location's jobs against the Dagster instance in ``DAGSTER_HOME`` (the same storage the
webserver reads), so their runs show up in the UI. Everything else goes through the
webserver: ``hybrid-audio`` (:mod:`.cli`).

    python -m hybrid_audio_dagster.runner.headless init
    python -m hybrid_audio_dagster.runner.headless batch [--json] [--check] [--force-stems] [--name SLUG]...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings

import dagster as dg


def _instance() -> dg.DagsterInstance:
    if not os.environ.get("DAGSTER_HOME"):
        raise SystemExit("DAGSTER_HOME is not set (the Makefile sets it to .dagster_home)")
    os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
    return dg.DagsterInstance.get()


def init() -> int:
    from hybrid_audio_dagster.definitions import defs
    from hybrid_audio_dagster.defs.pipeline.jobs import DATASETS_JOB
    from hybrid_audio_dagster.defs.tags import TRIGGER_TAG

    instance = _instance()
    result = defs.resolve_job_def(DATASETS_JOB).execute_in_process(instance=instance, tags={TRIGGER_TAG: "cli"}, raise_on_error=False)
    if not result.success:
        print(f"datasets run {result.run_id} failed: see its logs in the Dagster UI", file=sys.stderr)
        return 1
    for name in ("names", "developers", "templates"):
        print(f"{name:<11} {len(instance.get_dynamic_partitions(name))} partitions")
    return 0


def batch(args: argparse.Namespace) -> int:
    from hybrid_audio_dagster.runner.batch import BatchError, run_full_batch

    try:
        summary = run_full_batch(_instance(), force_stems=args.force_stems, names=args.name or (), check=args.check)
    except BatchError as exc:
        print("\n".join(exc.summary.lines()), file=sys.stderr)
        print(f"batch stopped: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary.to_dict(), indent=1) if args.json else "\n".join(summary.lines()))
    return 1 if summary.messages_failed or summary.checks_failed else 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    parser = argparse.ArgumentParser(prog="python -m hybrid_audio_dagster.runner.headless", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="load datasets and templates, register partitions")
    p = sub.add_parser("batch", help="materialize everything missing or stale, print a summary")
    p.add_argument("--force-stems", action="store_true", help="re-synthesize every stem")
    p.add_argument("--name", action="append", help="only this name slug (repeatable)")
    p.add_argument("--check", action="store_true", help="also run the bit-exact asset check")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    return init() if args.command == "init" else batch(args)


if __name__ == "__main__":
    sys.exit(main())
