"""Command line: ``hybrid-audio init | batch``.

``init`` and ``batch`` run in-process against the Dagster instance in ``DAGSTER_HOME``
(the same sqlite storage the webserver reads), so their runs show up in the UI.
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


def cmd_init(args: argparse.Namespace) -> int:
    from .batch import ALL
    from .definitions import build_resources

    instance = _instance()
    dg.materialize(ALL, selection=["names_dataset", "developers_dataset", "message_templates"], instance=instance, resources=build_resources())
    for name in ("names", "developers", "templates"):
        print(f"{name:<11} {len(instance.get_dynamic_partitions(name))} partitions")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from .batch import run_full_batch
    from .definitions import build_resources

    summary = run_full_batch(_instance(), build_resources(), force_stems=args.force_stems, names=args.name or (), check=args.check)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=1))
    else:
        print("\n".join(summary.lines()))
    return 1 if summary.messages_failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybrid-audio", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="load datasets and templates, register partitions")
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("batch", help="materialize everything missing or stale, print a summary")
    p.add_argument("--force-stems", action="store_true", help="re-synthesize every stem")
    p.add_argument("--name", action="append", help="only this name slug (repeatable)")
    p.add_argument("--check", action="store_true", help="also run the bit-exact asset check")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_batch)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
