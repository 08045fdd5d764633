"""Command line for Hybrid Audio.

* ``init`` / ``batch`` run in-process against the Dagster instance in ``DAGSTER_HOME``
  (the same sqlite storage the webserver reads), so their runs show up in the UI.
* ``datasets …`` manages the dataset files (validate, upload to the inbox, preview, list,
  delete) without touching Dagster.
* ``remote …`` speaks to a running Dagster webserver over HTTP: status, an on-demand
  message ("this person, this brand"), a backfill.
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
    from .automation.stages import DATASETS_JOB
    from .definitions import defs

    instance = _instance()
    result = defs.resolve_job_def(DATASETS_JOB).execute_in_process(instance=instance, tags={"hybrid_audio/trigger": "cli"}, raise_on_error=False)
    if not result.success:
        print(f"datasets run {result.run_id} failed: see its logs in the Dagster UI", file=sys.stderr)
        return 1
    for name in ("names", "developers", "templates"):
        print(f"{name:<11} {len(instance.get_dynamic_partitions(name))} partitions")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from .batch import BatchError, run_full_batch

    try:
        summary = run_full_batch(_instance(), force_stems=args.force_stems, names=args.name or (), check=args.check)
    except BatchError as exc:
        print("\n".join(exc.summary.lines()), file=sys.stderr)
        print(f"batch stopped: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary.to_dict(), indent=1))
    else:
        print("\n".join(summary.lines()))
    return 1 if summary.messages_failed or summary.checks_failed else 0


def _paths():
    # only the folders: dataset and rotation commands must work whatever TTS engine is set up
    from .resources.paths import project_paths

    return project_paths()


def cmd_datasets(args: argparse.Namespace) -> int:
    from . import dataset_admin

    paths = _paths()
    try:
        if args.action == "list":
            for entry in dataset_admin.list_datasets(paths):
                print(json.dumps(entry, ensure_ascii=False, default=str))
            return 0
        if args.action == "preview":
            out = dataset_admin.preview(paths, args.file, args.role, n=args.n)
            print(json.dumps(out, indent=1, ensure_ascii=False, default=str))
            return 0
        if args.action == "upload":
            result = dataset_admin.upload(paths, args.file, filename=os.path.basename(args.file), role=args.role, ingest=args.ingest)
            print(result.report.to_json())
            if result.ok:
                where = "ingested into" if result.ingested else "placed in the inbox as"
                print(f"{where} {result.placed}" + (f"; new: {', '.join(result.new_keys)}" if result.new_keys else ""))
            return 0 if result.ok else 1
        if args.action == "delete":
            removed = dataset_admin.delete(paths, args.name)
            print(f"deleted {removed}")
            return 0
    except dataset_admin.DatasetAdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(args.action)


def cmd_remote(args: argparse.Namespace) -> int:
    from .remote import Remote, RemoteError

    remote = Remote(args.url)
    try:
        if args.action == "status":
            for entry in remote.locations():
                err = entry["locationOrLoadError"] or {}
                print(f"{entry['name']}: {entry['loadStatus']} {err.get('__typename', '')} {err.get('message', '')}".rstrip())
            dims = remote.partition_keys("messages")
            print(f"templates: {len(dims.get('template', []))}, developers: {len(dims.get('developer', []))}")
            return 0
        if args.action == "generate":
            run_id = remote.generate(template=args.template, developer=args.developer, names=args.name)
            print(f"run {run_id} submitted")
            if args.wait:
                status = remote.wait(run_id, timeout_s=args.timeout)
                print(f"run {run_id}: {status}")
                return 0 if status == "SUCCESS" else 1
            return 0
        if args.action == "backfill":
            print(f"backfill {remote.backfill(args.asset)} launched")
            return 0
    except RemoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(args.action)


def cmd_rotation(args: argparse.Namespace) -> int:
    from .rotation_schedule import generate_next_pair, preview_pairs

    paths = _paths()
    if args.action == "preview":
        for pair in preview_pairs(paths, args.n):
            print(json.dumps(pair, ensure_ascii=False, default=str))
        return 0
    pair = generate_next_pair(_instance(), paths, request_id=args.request_id)
    print(json.dumps({"name": pair.name, "developer": pair.developer, "template": pair.template,
                      "partition": str(pair.partition_key), "ready": pair.ready, "problem": pair.problem}, ensure_ascii=False))
    if not pair.ready:
        print("stems missing: the pair waits in the retry ledger for the next rotation tick", file=sys.stderr)
        return 1
    if not args.submit:
        return 0
    from .remote import Remote, RemoteError

    remote = Remote(args.url)
    try:
        run_id = remote.submit_messages(str(pair.partition_key), pair.run_config, pair.tags)
        print(f"run {run_id} submitted")
        if args.wait:
            status = remote.wait(run_id, timeout_s=args.timeout)
            print(f"run {run_id}: {status}")
            return 0 if status == "SUCCESS" else 1
    except RemoteError as exc:
        print(f"error: {exc} (the pair stays in the retry ledger)", file=sys.stderr)
        return 2
    return 0


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

    ds = sub.add_parser("datasets", help="validate, upload, preview, list and delete dataset files")
    ds_sub = ds.add_subparsers(dest="action", required=True)
    ds_sub.add_parser("list", help="seed files and accepted versions")
    p = ds_sub.add_parser("preview", help="normalised items and rejects of a file, without ingesting it")
    p.add_argument("file")
    p.add_argument("--role", choices=["names", "developers"])
    p.add_argument("-n", type=int, default=20)
    p = ds_sub.add_parser("upload", help="validate a file, then place it in the inbox (or --ingest it now)")
    p.add_argument("file")
    p.add_argument("--role", choices=["names", "developers"])
    p.add_argument("--ingest", action="store_true")
    p = ds_sub.add_parser("delete", help="remove an accepted version: <kind>/<file> inside the dataset store")
    p.add_argument("name")
    ds.set_defaults(func=cmd_datasets)

    rm = sub.add_parser("remote", help="talk to a running Dagster webserver over HTTP")
    rm.add_argument("--url", default=os.environ.get("HYBRID_AUDIO_DAGSTER_URL", "http://127.0.0.1:3000"))
    rm_sub = rm.add_subparsers(dest="action", required=True)
    rm_sub.add_parser("status", help="code location and partition counts")
    p = rm_sub.add_parser("generate", help="make (or refresh) one person's message for one brand now")
    p.add_argument("--template", required=True)
    p.add_argument("--developer", required=True, help="developer slug")
    p.add_argument("--name", required=True, action="append", help="name slug (repeatable)")
    p.add_argument("--wait", action="store_true", help="wait for the run to finish")
    p.add_argument("--timeout", type=float, default=600)
    p = rm_sub.add_parser("backfill", help="backfill every partition of an asset")
    p.add_argument("--asset", default="messages")
    rm.set_defaults(func=cmd_remote)

    ro = sub.add_parser("rotation", help="the deterministic name × developer rotation")
    ro_sub = ro.add_subparsers(dest="action", required=True)
    p = ro_sub.add_parser("preview", help="the next pairs, without advancing")
    p.add_argument("-n", type=int, default=20)
    p = ro_sub.add_parser("next", help="advance one pair (generate pair); --submit sends its run to the webserver")
    p.add_argument("--request-id", help="idempotency key: the same id returns the same pair")
    p.add_argument("--submit", action="store_true")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--url", default=os.environ.get("HYBRID_AUDIO_DAGSTER_URL", "http://127.0.0.1:3000"))
    ro.set_defaults(func=cmd_rotation)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
