"""Scenario ``partitions`` (issue #12 item 5, the alternative): what Dagster's bookkeeping costs
per *name* with one partition per name, against one partition per group of names.

Per-name partitions can't reach "≤ 10 ms of Dagster bookkeeping per name" (scenario
``scale``): the floor is in Dagster itself, before any of our code runs. With an asset whose
body does nothing but record the metadata the real ``name_stems`` asset records, each name
partition still costs an ``ASSET_MATERIALIZATION_PLANNED`` event at run creation and an
``ASSET_MATERIALIZATION`` event, and on Postgres ``dagster-postgres`` opens a new connection
(``NullPool``, SCRAM authentication) for each event it stores.

The alternative measured here keeps a per-name view in the UI with far fewer partitions:
**name groups** keyed by a prefix of the slug (``jo`` holds ``john``, ``joanna``, …): the
shortest prefix, two letters or more, whose group holds at most ``GROUP_CAP`` names (a group
that outgrows it splits by one more letter, once). A user finds a name's group from its
spelling, and the partition page shows one table row per name (slug, display text, slot,
signature, sha256, cache) beside the ``stems``/``slots`` cache index of the whole group. Runs
take at most ``GROUPS_PER_RUN`` groups (``BackfillPolicy.multi_run``), so neither a group's
metadata nor a run's memory grows with the campaign.

One fresh process per (backend, layout, N): ``python -m bench.partition_bench --backend B
--layout L --names N --home H --out F``. Each materializes every partition in one run
(``BackfillPolicy.single_run``, as the stem assets do) and reports the run's wall time minus
the asset body's own time (building the metadata), per name; and the peak RSS of the process.
``add_asset_metadata`` counts as bookkeeping: it validates the partition key by loading every
dynamic partition of the asset from storage, O(partitions) per call. Postgres cases run on a
throwaway server (:mod:`testkit.postgres`), with and without Dagster's own ``DAGSTER_EVENT_BATCH_SIZE``
event batching.
"""

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from bench.common import PROJECT_ROOT, peak_rss_mb, run_child, synthetic_names

GROUP_KEY_LEN = 2
SLOTS = ("greeting", "greeting-alt")  # two name slots per name, as two templates give


GROUP_CAP = 400  # names per group at most: a bigger group splits by one more letter


def group_key(slug: str, length: int = GROUP_KEY_LEN) -> str:
    """The group of a name slug: its first ``length`` characters (``"jo"`` for ``"john-smith"``)."""
    head = slug.replace("-", "")[:length]
    return head.ljust(length, "0")


def group_names(slugs: list[str], cap: int = GROUP_CAP) -> dict[str, list[str]]:
    """Slugs by group: the shortest prefix (two characters or more) whose group holds at most
    ``cap`` names, so a group's metadata, and a run's memory, stay bounded as N grows. A group
    only changes key when it outgrows ``cap`` and splits (``jo`` → ``joa``, ``joh``, …)."""
    out: dict[str, list[str]] = {}
    todo = [(GROUP_KEY_LEN, slugs)]
    while todo:
        length, members = todo.pop()
        groups: dict[str, list[str]] = {}
        for slug in members:
            groups.setdefault(group_key(slug, length), []).append(slug)
        for key, group in groups.items():
            if len(group) > cap and length < max(len(s) for s in group):
                todo.append((length + 1, group))
            else:
                out[key] = group
    return out


def _fake_record(text: str) -> "tuple[str, dict]":
    sig = hashlib.sha256(text.encode()).hexdigest()
    sha = hashlib.sha256(sig.encode()).hexdigest()
    return sig, {
        "signature": sig,
        "sha256": sha,
        "path": f"stems/bench/{sig[:2]}/{sig}/{sha[:16]}.wav",
        "frames": 4410,
        "sample_rate": 22050,
        "trim_start": 0,
        "trim_end": 4410,
        "engine": "bench",
    }


def _per_name_metadata(slug: str, display: str, dg) -> dict:
    stems, slots, rows = {}, {}, []
    for slot in SLOTS:
        sig, rec = _fake_record(f"{slot}:{display}")
        stems[sig], slots[slot] = rec, sig
        rows.append(f"| {slot} | Hey {display}, | miss | `{sig[:12]}` | `{rec['sha256'][:12]}` |")
    return {
        "stems": dg.MetadataValue.json(stems),
        "slots": dg.MetadataValue.json(slots),
        "status": "ok",
        "tts_calls": len(SLOTS),
        "cache_hits": 0,
        "texts": dg.MetadataValue.md("| slot | text | cache | signature | sha256 |\n|---|---|---|---|---|\n" + "\n".join(rows)),
    }


def _group_metadata(members: list[tuple[str, str]], dg) -> dict:
    stems, slots, rows = {}, {}, []
    for slug, display in members:
        for slot in SLOTS:
            sig, rec = _fake_record(f"{slot}:{display}")
            stems[sig] = rec
            slots[f"{slug}/{slot}"] = sig
            rows.append(
                dg.TableRecord(
                    {
                        "name": slug,
                        "text": f"Hey {display},",
                        "slot": slot,
                        "signature": sig[:12],
                        "sha256": rec["sha256"][:12],
                        "cache": "miss",
                    }
                )
            )
    schema = dg.TableSchema(columns=[dg.TableColumn(c) for c in ("name", "text", "slot", "signature", "sha256", "cache")])
    return {
        "stems": dg.MetadataValue.json(stems),
        "slots": dg.MetadataValue.json(slots),
        "names": len(members),
        "status": "ok",
        "per_name": dg.MetadataValue.table(rows, schema=schema),
    }


def child(args: argparse.Namespace) -> dict:
    import dagster as dg

    # synthetic names vary their last syllable fastest; moving it to the front spreads them over
    # the 90 first syllables as real names spread over first letters (a rotation keeps them distinct)
    slugs = [w[-2:] + w[:-2] for w in (d.lower() for d in synthetic_names(args.names))]
    displays = [s.capitalize() for s in slugs]
    members: dict[str, list[tuple[str, str]]] = {}
    if args.layout == "grouped":
        display_of = dict(zip(slugs, displays))
        members = {k: [(s, display_of[s]) for s in g] for k, g in group_names(slugs).items()}
    else:
        members = {slug: [(slug, display)] for slug, display in zip(slugs, displays)}
    keys = sorted(members)
    partitions = dg.DynamicPartitionsDefinition(name=f"bench_{args.layout.replace('-', '_')}")
    body_s, add_s = [0.0], [0.0]

    @dg.asset(partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def bench_stems(context: dg.AssetExecutionContext) -> None:
        # the body's own work is building the metadata; add_asset_metadata is Dagster's
        # bookkeeping (it loads every dynamic partition of the asset to validate the key)
        for key in context.partition_keys:
            t0 = time.perf_counter()
            group = members[key]
            md = _group_metadata(group, dg) if args.layout == "grouped" else _per_name_metadata(*group[0], dg)
            body_s[0] += time.perf_counter() - t0
            t0 = time.perf_counter()
            context.add_asset_metadata(md, partition_key=key)
            add_s[0] += time.perf_counter() - t0

    with dg.DagsterInstance.from_config(args.home) as instance:
        instance.add_dynamic_partitions(partitions.name, keys)
        step = args.max_per_run or len(keys)
        runs, success = 0, True
        t0 = time.perf_counter()
        for start in range(0, len(keys), step):  # as BackfillPolicy.multi_run(max_partitions_per_run) would split it
            chunk = keys[start : start + step]
            result = dg.materialize(
                [bench_stems],
                instance=instance,
                tags={"dagster/asset_partition_range_start": chunk[0], "dagster/asset_partition_range_end": chunk[-1]},
            )
            success = success and result.success
            runs += 1
        wall = time.perf_counter() - t0
        peak = peak_rss_mb()  # before the check below, which is not part of the work
        recorded = instance.get_materialized_partitions(bench_stems.key)
    overhead = wall - body_s[0]
    sizes = [len(m) for m in members.values()]
    return {
        "ok": success and len(recorded) == len(keys),
        "runs": runs,
        "backend": args.backend,
        "layout": args.layout,
        "event_batch_size": int(os.environ.get("DAGSTER_EVENT_BATCH_SIZE", "0") or 0),
        "names": args.names,
        "partitions": len(keys),
        "names_per_partition_max": max(sizes),
        "names_per_partition_mean": args.names / len(keys),
        "run_s": wall,
        "body_s": body_s[0],
        "bookkeeping_per_name_ms": overhead * 1000 / args.names,
        "bookkeeping_per_partition_ms": overhead * 1000 / len(keys),
        "add_metadata_s": add_s[0],
        "add_metadata_per_partition_ms": add_s[0] * 1000 / len(keys),
        "materializations_recorded": len(recorded),
        "peak_rss_mb": peak,
    }


# --------------------------------------------------------------------------- parent


GROUPS_PER_RUN = 10  # name groups per run: bounds a run's metadata, so memory stays flat as N grows
CASES = (  # (backend, layout, DAGSTER_EVENT_BATCH_SIZE, which size list, connection)
    ("sqlite", "per-name", 0, "per_name", "direct"),
    ("postgres", "per-name", 0, "per_name", "direct"),
    ("postgres", "per-name", 1000, "per_name", "direct"),
    # the deployment levers at once: PgBouncer (transaction pooling, md5 client auth) + event batching
    ("postgres", "per-name", 1000, "per_name", "pgbouncer"),
    ("sqlite", "grouped", 0, "grouped", "direct"),
    ("postgres", "grouped", 0, "grouped", "direct"),
)


def run_scenario(scratch: Path, *, per_name: list[int], grouped: list[int], log=print) -> dict:
    """Every case in its own process; Postgres on a throwaway server (skipped, with the reason,
    when its binaries are missing). Returns the ``partitions`` section of the report."""
    import subprocess

    sys.path.insert(0, str(PROJECT_ROOT))
    from testkit.pgbouncer import PgBouncer, pgbouncer_binary
    from testkit.postgres import PgServer, pg_bindir, write_postgres_home

    section: dict = {
        "ok": True,
        "cases": [],
        "skipped": {},
        "groups_per_run": GROUPS_PER_RUN,
        "group_key": f"shortest slug prefix (>= {GROUP_KEY_LEN} chars) of <= {GROUP_CAP} names",
    }
    server = bouncer = None
    if pg_bindir() is None:
        section["skipped"]["postgres"] = "PostgreSQL server binaries not installed (apt-get install -y postgresql)"
    else:
        server = PgServer(pg_bindir())
        server.start()
        if pgbouncer_binary() is None:
            section["skipped"]["pgbouncer"] = "PgBouncer not installed (apt-get install -y pgbouncer)"
        else:
            bouncer = PgBouncer(server, pgbouncer_binary())
            try:
                bouncer.start()
            except (OSError, RuntimeError) as exc:
                section["skipped"]["pgbouncer"] = f"PgBouncer did not start: {exc}"
                bouncer = None
    sizes = {"per_name": per_name, "grouped": grouped}
    try:
        for i, (backend, layout, batch, which, via) in enumerate(CASES):
            if (backend == "postgres" and server is None) or (via == "pgbouncer" and bouncer is None):
                continue
            for n in sizes[which]:
                work = scratch / f"partitions_{i}_{n}"
                home = work / "home"
                home.mkdir(parents=True, exist_ok=True)
                if backend == "postgres":
                    db = server.create_database(f"partitions_{i}_{n}")
                    write_postgres_home(home, bouncer.database(db.dbname) if via == "pgbouncer" else db)
                else:
                    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
                out = work / "result.json"
                env = {**os.environ, "DAGSTER_EVENT_BATCH_SIZE": str(batch)}
                log(
                    f"[partitions] {backend} {layout}{' (event batching)' if batch else ''}"
                    f"{' via PgBouncer' if via == 'pgbouncer' else ''}: {n:,} names ..."
                )
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.partition_bench",
                        "--backend",
                        backend,
                        "--layout",
                        layout,
                        "--names",
                        str(n),
                        "--home",
                        str(home),
                        "--out",
                        str(out),
                        "--max-per-run",
                        str(GROUPS_PER_RUN if layout == "grouped" else 0),
                    ],
                    cwd=str(PROJECT_ROOT),
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    timeout=3600,
                    check=False,
                )
                try:
                    res = json.loads(out.read_text())
                except (OSError, ValueError):
                    res = {
                        "ok": False,
                        "backend": backend,
                        "layout": layout,
                        "names": n,
                        "event_batch_size": batch,
                        "error": f"exit {proc.returncode}: {proc.stderr[-800:]}",
                    }
                res["via"] = via
                section["cases"].append(res)
                section["ok"] = section["ok"] and res.get("ok", False)
    finally:
        if bouncer is not None:
            bouncer.stop()
        if server is not None:
            server.stop()
    section["summary"] = summarize(section["cases"])
    return section


def summarize(cases: list[dict]) -> dict:
    """Per backend: per-name bookkeeping of each layout at its largest N, and their ratio."""
    out: dict = {}
    for backend in ("sqlite", "postgres"):

        def largest(layout: str, batch: int = 0, via: str = "direct", backend: str = backend) -> dict | None:
            ok = [
                c
                for c in cases
                if c.get("ok")
                and c["backend"] == backend
                and c["layout"] == layout
                and c.get("event_batch_size", 0) == batch
                and c.get("via", "direct") == via
            ]
            return max(ok, key=lambda c: c["names"]) if ok else None  # called within the iteration

        per, grp = largest("per-name"), largest("grouped")
        if not per and not grp:
            continue
        e: dict = {"per_name_ms": per and per["bookkeeping_per_name_ms"], "grouped_ms": grp and grp["bookkeeping_per_name_ms"]}
        if per and grp:
            e["grouped_vs_per_name"] = grp["bookkeeping_per_name_ms"] / per["bookkeeping_per_name_ms"]
        batched = largest("per-name", 1000)
        if batched:
            e["per_name_event_batching_ms"] = batched["bookkeeping_per_name_ms"]
        pooled = largest("per-name", 1000, "pgbouncer")
        if pooled:
            e["per_name_pgbouncer_ms"] = pooled["bookkeeping_per_name_ms"]
            e["per_name_pgbouncer_add_metadata_ms"] = pooled["add_metadata_per_partition_ms"]
        grouped = sorted(
            (c for c in cases if c.get("ok") and c["backend"] == backend and c["layout"] == "grouped"), key=lambda c: c["names"]
        )
        if len(grouped) > 1:
            e["grouped_peak_rss_ratio"] = grouped[-1]["peak_rss_mb"] / grouped[0]["peak_rss_mb"]
            e["grouped_rss_names"] = [grouped[0]["names"], grouped[-1]["names"]]
        out[backend] = e
    return out


def table_rows(section: dict, fmt) -> list[tuple[str, str, str]]:
    """Rows for :func:`bench.run.table`."""
    rows = [
        (
            "8 partitions",
            f"Dagster bookkeeping per name: one partition per name vs name groups ({section.get('group_key')}); empty body, real metadata",
            "",
        )
    ]
    for what, why in section.get("skipped", {}).items():
        rows.append(("8 partitions", f"  {'PgBouncer' if what == 'pgbouncer' else 'Postgres'}", f"SKIPPED: {why}"))
    for c in section.get("cases", []):
        label = (
            f"  {c['backend']} {c['layout']}{' +event batching' if c.get('event_batch_size') else ''}"
            f"{' via PgBouncer' if c.get('via') == 'pgbouncer' else ''} {c['names']:,} names"
        )
        if not c.get("ok"):
            rows.append(("8 partitions", label, f"FAILED: {c.get('error')}"))
            continue
        rows.append(
            (
                "8 partitions",
                label,
                f"{fmt(c['bookkeeping_per_name_ms'], 3)} ms/name ({c['partitions']:,} partitions, ≤{c['names_per_partition_max']:,} "
                f"names each; {fmt(c['bookkeeping_per_partition_ms'])} ms/partition, of which add_asset_metadata "
                f"{fmt(c.get('add_metadata_per_partition_ms'))} ms; {c.get('runs', 1)} run(s) {fmt(c['run_s'])} s; "
                f"peak RSS {fmt(c['peak_rss_mb'])} MB)",
            )
        )
    for backend, e in (section.get("summary") or {}).items():
        if e.get("grouped_vs_per_name") is not None:
            rows.append(("8 partitions", f"  {backend}: grouped ÷ per-name, per name", f"×{fmt(e['grouped_vs_per_name'], 3)}"))
        if e.get("grouped_peak_rss_ratio") is not None:
            a, b = e["grouped_rss_names"]
            rows.append(("8 partitions", f"  {backend}: grouped peak RSS {b:,} ÷ {a:,} names", f"×{fmt(e['grouped_peak_rss_ratio'])}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.partition_bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    ap.add_argument("--layout", choices=["per-name", "grouped"], required=True)
    ap.add_argument("--names", type=int, required=True)
    ap.add_argument("--home", required=True, help="a Dagster home with its dagster.yaml")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-per-run", type=int, default=0, help="partitions per run (0: all in one run)")
    args = ap.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore")
    return run_child(args.out, lambda: child(args), backend=args.backend, layout=args.layout, names=args.names)


if __name__ == "__main__":
    sys.exit(main())
