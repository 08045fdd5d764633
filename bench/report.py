"""The report of ``python -m bench.run``: the targets each figure is judged against, the plain
verdicts for the scale targets, and the table printed at the end (split from :mod:`bench.run`)."""

from __future__ import annotations

# --------------------------------------------------------------------------- targets


def _t(tid: str, what: str, value, op: str, target, *, note: str = "") -> dict:
    if value is None:
        ok = None
    elif op == ">=":
        ok = value >= target
    elif op == "<=":
        ok = value <= target
    elif op == "==":
        ok = value == target
    else:  # pragma: no cover
        raise ValueError(op)
    return {"id": tid, "what": what, "value": value, "op": op, "target": target, "pass": ok, "note": note}


def evaluate(report: dict) -> list[dict]:
    sc = report["scenarios"]
    out: list[dict] = []
    core = sc.get("core") or {}
    r = core.get("ratios", {})
    if core:
        out.append(_t("core.vs_numpy_soundfile", "assembly core ÷ numpy+soundfile (msg/s)", r.get("core_vs_numpy_soundfile"), ">=", 0.8))
        out.append(_t("core.vs_pydub", "assembly core ÷ pydub (msg/s)", r.get("core_vs_pydub"), ">=", 4.0))
        ident = core.get("byte_identical", {})
        out.append(
            _t(
                "core.byte_identical",
                "outputs byte-identical across approaches",
                all(v["byte_identical"] for v in ident.values()) if ident else None,
                "==",
                True,
            )
        )
    large = (sc.get("batch_large") or {}).get("summary")
    small = (sc.get("batch_small") or {}).get("summary")
    if large:
        n = sc["batch_large"]["messages"]
        out.append(
            _t(
                "batch.messages_per_s",
                f"Dagster batch msg/s at {n:,} messages (messages range run)",
                large["messages_per_s"]["median"],
                ">=",
                1000.0,
            )
        )
        out.append(_t("batch.vs_pydub", "Dagster batch ÷ pydub inner loop (same messages)", large.get("vs_pydub"), ">=", 1.6))
        out.append(
            _t(
                "batch.vs_numpy_soundfile",
                "Dagster batch ÷ numpy+soundfile loop (same messages)",
                large.get("vs_numpy_soundfile"),
                ">=",
                0.4,
            )
        )
        out.append(
            _t(
                "noop.checked_per_s",
                f"no-op re-run, messages checked/s at {n:,} (messages run)",
                large["noop_checked_per_s"]["median"],
                ">=",
                20000.0,
            )
        )
    noop_calls = sum(
        (sc.get(k) or {}).get("summary", {}).get("noop_tts_calls", 0) + (sc.get(k) or {}).get("summary", {}).get("noop_synthesize_calls", 0)
        for k in ("batch_small", "batch_large")
    )
    noop_rewrites = sum(
        (sc.get(k) or {}).get("summary", {}).get("noop_files_rewritten", 0) + (sc.get(k) or {}).get("summary", {}).get("noop_written", 0)
        for k in ("batch_small", "batch_large")
    )
    if large or small:
        out.append(_t("noop.tts_calls", "no-op re-run: TTS calls (all batch scenarios)", noop_calls, "==", 0))
        out.append(_t("noop.files_rewritten", "no-op re-run: files rewritten (all batch scenarios)", noop_rewrites, "==", 0))
    cart = (sc.get("stems_cartesia") or {}).get("summary")
    if cart:
        out.append(_t("cartesia.fraction_of_ideal", "Cartesia stems/s ÷ (cap / latency)", cart.get("fraction_of_ideal"), ">=", 0.9))
        out.append(
            _t(
                "cartesia.body_fraction_of_ideal",
                "  the same inside the asset body only (informational: excludes Dagster's run/event cost)",
                cart.get("body_fraction_of_ideal"),
                ">=",
                0.9,
            )
        )
        out.append(
            _t(
                "cartesia.max_in_flight",
                "Cartesia max requests in flight",
                cart.get("max_in_flight"),
                "<=",
                sc["stems_cartesia"].get("cap"),
            )
        )
    scale = sc.get("scale") or {}
    ssum = scale.get("summary") or {}
    if scale:
        pg = ssum.get("postgres") or {}
        sq = ssum.get("sqlite") or {}

        def biggest(e: dict) -> dict | None:
            return e["by_names"][max(e["by_names"], key=int)] if e.get("by_names") else None

        pgb, sqb = biggest(pg), biggest(sq)
        skip = (scale.get("skipped") or {}).get("postgres", "")
        out.append(
            _t(
                "scale.bookkeeping_pg",
                "Postgres: Dagster bookkeeping per name partition, cold stems run (ms, largest N)",
                pgb and pgb["bookkeeping_per_name_partition_ms"],
                "<=",
                10.0,
                note=skip,
            )
        )

        def how(r: dict | None) -> str:
            return "MEASURED" if r and r["noop_1m_measured"] else "EXTRAPOLATED"

        out.append(
            _t(
                "scale.noop_1m_pg",
                f"Postgres: no-op batch over 1M messages, {how(pgb)} (s)",
                pgb and pgb["noop_1m_s"],
                "<=",
                60.0,
                note=skip,
            )
        )
        out.append(
            _t(
                "scale.memory_pg",
                "Postgres: peak RSS largest ÷ smallest N (flat memory)",
                (pg.get("memory_ratio") or {}).get("peak_rss_ratio"),
                "<=",
                1.2,
                note=skip,
            )
        )
        out.append(
            _t(
                "scale.bookkeeping_sqlite",
                "sqlite: Dagster bookkeeping per name partition (ms, largest N)",
                sqb and sqb["bookkeeping_per_name_partition_ms"],
                "<=",
                10.0,
            )
        )
        out.append(
            _t("scale.noop_1m_sqlite", f"sqlite: no-op batch over 1M messages, {how(sqb)} (s)", sqb and sqb["noop_1m_s"], "<=", 60.0)
        )
        out.append(
            _t(
                "scale.memory_sqlite",
                "sqlite: peak RSS largest ÷ smallest N (flat memory)",
                (sq.get("memory_ratio") or {}).get("peak_rss_ratio"),
                "<=",
                1.2,
            )
        )
        out.append(
            _t(
                "scale.noop_tts_calls",
                "scale no-op batches: TTS calls + files rewritten",
                sum(r["noop_tts_calls"] + r["noop_files_rewritten"] for e in (pg, sq) for r in (e.get("by_names") or {}).values()),
                "==",
                0,
            )
        )
    part = sc.get("partitions") or {}
    for backend in ("sqlite", "postgres") if part else ():
        out.append(
            _t(
                f"partitions.grouped_{backend}",
                f"{backend}: Dagster bookkeeping per name with name groups (ms, largest N)",
                ((part.get("summary") or {}).get(backend) or {}).get("grouped_ms"),
                "<=",
                10.0,
                note=(part.get("skipped") or {}).get(backend, ""),
            )
        )
    scaling = report.get("scaling")
    if scaling:
        out.append(_t("scaling.throughput", "msg/s large ÷ small (within 20%)", scaling.get("throughput_ratio"), ">=", 0.8))
        out.append(_t("scaling.peak_rss", "peak RSS large ÷ small", scaling.get("peak_rss_ratio"), "<=", 1.2))
    return out


# --------------------------------------------------------------------------- table


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


METHOD = {
    "figures": "every figure is the median over repetitions (min/max in the JSON); every ratio is the median of "
    "per-repetition ratios measured in the same process right after each other",
    "core": "stems in memory; each approach writes one WAV per message into a scratch folder emptied (untimed) "
    "between batches; approaches interleaved in a rotating order; outputs compared byte for byte",
    "batch": "run_full_batch in a fresh process on a sqlite DAGSTER_HOME, stems warm (made by a separate setup "
    "process), output folder empty; 'messages range run' = wall time of the dg.materialize call of the "
    "messages asset (one range run over every template x developer partition); 'whole run_full_batch' "
    "includes the dataset and stem runs",
    "bookkeeping": "Dagster bookkeeping per message = (messages run wall time - the asset function's own time, from "
    "the asset's log line) / messages: run and step setup, resource init, storing the events and "
    "per-partition metadata. 'All but the audio core' = (run wall - summed time of "
    "build_message + AssembledMessage.write, timed by wrapping them) / messages",
    "peak_rss": "VmHWM of the measuring process through its first timed batch (a fresh process: imports, instance, "
    "a one-name warm-up, one batch); the whole process's ru_maxrss (wait4) is reported beside it",
    "noop": "the same run_full_batch again with nothing changed; files rewritten = .wav files whose mtime changed or "
    "that disappeared + messages the asset reports written; TTS calls = the stems assets' tts_calls metadata "
    "and, independently, calls of TTSResource.synthesize counted by a wrapper",
    "scale": "bench/scale_bench.py, one fresh process per (backend, N): a project of N names x D developers x 2 tiny "
    "templates, an instant fake TTS engine (a deterministic tone per text); sqlite = deploy/dagster.yaml, Postgres = "
    "deploy/dagster.postgres.yaml on a throwaway server started by the bench (testkit/postgres.py). Cold = run_full_batch "
    "from nothing; bookkeeping per name partition = (name_stems run wall - materialize_stems body time) / name "
    "partitions, Dagster's add_asset_metadata counted as bookkeeping; engine alone = the same (text, voice) pairs "
    "synthesized again in the same process without Dagster. No-op = run_full_batch again; checked/s = messages "
    "checked / whole batch wall; stat-only baseline = os.stat of every message WAV in the same process. 1M "
    "messages is MEASURED when the project holds them (--scale-developers 50 with 10,000 names), else "
    "EXTRAPOLATED: the batch's time outside the messages run kept, the messages run scaled linearly (an upper "
    "bound). Peak RSS = VmHWM of the child through the cold "
    "batch and through the no-op batch (the larger)",
    "cartesia": "the fake server (testkit/cartesia_server.py) in its own process on 127.0.0.1 with the given "
    "latency and concurrency cap; name_stems over N names with force=True; max in flight as the "
    "server counted it",
}


def scale_verdict(scale: dict) -> list[str]:
    """Plain sentences: which scale targets per-name partitions miss, with the measured numbers."""
    out = []
    ssum = scale.get("summary") or {}
    for backend in ("postgres", "sqlite"):
        e = ssum.get(backend) or {}
        if not e.get("by_names"):
            continue
        n = max(e["by_names"], key=int)
        r = e["by_names"][n]
        bk = r["bookkeeping_per_name_partition_ms"]
        out.append(
            f"{backend} {int(n):,} names: {'meets' if bk <= 10 else 'MISSES'} ≤ 10 ms/name partition ({_fmt(bk)} ms; the "
            f"cold name-stems run takes {_fmt(r['name_stems_run_s'])} s; the engine alone makes the same stems "
            f"×{_fmt(r['engine_alone_stems_per_s'] / r['stems_per_s'])} faster)"
        )
        x = r["noop_1m_s"]
        how = "MEASURED" if r["noop_1m_measured"] else "EXTRAPOLATED"
        out.append(
            f"{backend} {int(n):,} names: no-op 1M messages {'meets' if x <= 60 else 'MISSES'} ≤ 60 s "
            f"({how} {_fmt(x)} s from {r['noop_messages']:,} measured in {_fmt(r['noop_s'])} s)"
        )
        m = (e.get("memory_ratio") or {}).get("peak_rss_ratio")
        if m is not None:
            out.append(
                f"{backend}: memory {'flat' if m <= 1.2 else 'NOT flat'} (peak RSS ×{_fmt(m)} for ×"
                f"{_fmt(e['memory_ratio']['names_ratio'])} names)"
            )
    return out


def table(report: dict) -> str:
    sc = report["scenarios"]
    rows: list[tuple[str, str, str]] = []
    env = report.get("environment", {})
    fs = env.get("scratch_fs", {})
    rows.append(
        (
            "setup",
            f"preset {report['preset']}" + (f" ({report['preset_note']})" if report.get("preset_note") else ""),
            (
                f"scratch {env.get('scratch')} on {fs.get('type')}; {env.get('cpus')} CPUs; load average before "
                f"{report['load_average_before'][0]:.2f}, after {report['load_average_after'][0]:.2f}"
            ),
        )
    )
    core = sc.get("core")
    if core and core.get("ok", True) and "approaches" in core:
        m = core["message"]
        rows.append(
            (
                "1 core",
                (
                    f"message: {m['seconds']} s, {m['sample_rate']} Hz mono 16-bit, {m['bytes'] / 1e6:.2f} MB; "
                    f"{core['approaches']['core']['messages']} msgs × {core['reps']} reps"
                ),
                "",
            )
        )
        for name, a in core["approaches"].items():
            mb = a.get("mb_per_s")
            rows.append(("1 core", f"  {name}", f"{_fmt(a['messages_per_s']['median'])} msg/s" + (f", {_fmt(mb)} MB/s" if mb else "")))
        for name, why in core.get("skipped", {}).items():
            rows.append(("1 core", f"  {name}", f"skipped: {why}"))
        for k, v in core["ratios"].items():
            if v is not None:
                rows.append(("1 core", f"  ratio {k}", _fmt(v)))
    for key, label in (("batch_small", "2 batch"), ("batch_large", "2 batch")):
        b = sc.get(key)
        if not b:
            continue
        if not b.get("ok"):
            rows.append((label, key, f"FAILED: {b.get('error')}"))
            continue
        s = b["summary"]
        rows.append(
            (
                label,
                f"{key}: {b['names']} names × {b['developers']} developers = {b['messages']:,} messages",
                f"{b['message']['seconds']} s / {b['message']['bytes'] / 1e6:.2f} MB each ({b['message']['sample_rate']} Hz), {b['output_mb']:,} MB",
            )
        )
        rows.append((label, "  messages range run", f"{_fmt(s['messages_per_s']['median'])} msg/s ({_fmt(s['messages_run_s'])} s)"))
        rows.append(
            (label, "  whole run_full_batch (5 runs)", f"{_fmt(s['batch_messages_per_s']['median'])} msg/s ({_fmt(s['batch_s'])} s)")
        )
        rows.append(
            (label, "  per message: audio core (assemble + write, Σ over threads)", f"{_fmt(s['assemble_write_per_message_ms'], 3)} ms")
        )
        rows.append(
            (
                label,
                "  per message: all but the audio core (run wall − Σ core)",
                f"{_fmt(s['not_audio_core_per_message_ms'], 3)} ms"
                if s["not_audio_core_per_message_ms"] is not None
                else "n/a (the asset writes on several threads)",
            )
        )
        rows.append(
            (label, "  per message: Dagster bookkeeping (run wall − asset body)", f"{_fmt(s['dagster_outside_body_per_message_ms'], 3)} ms")
        )
        rows.append(
            (
                label,
                "  peak RSS (fresh process: imports + instance + batch)",
                f"{_fmt(s['peak_rss_mb'])} MB (whole process {_fmt(b.get('child_max_rss_mb'))} MB)",
            )
        )
        for name, v in s["baselines_messages_per_s"].items():
            rows.append((label, f"  baseline {name} ({s['baseline_messages']} msgs)", f"{_fmt(v['median'])} msg/s"))
        rows.append(
            (
                label,
                "  ratio ÷ pydub / ÷ numpy+soundfile / ÷ core alone",
                f"{_fmt(s['vs_pydub'])} / {_fmt(s['vs_numpy_soundfile'])} / {_fmt(s['vs_core'])}",
            )
        )
        rows.append(
            (
                "3 no-op",
                f"  {key}: checked/s messages run (whole batch)",
                f"{_fmt(s['noop_checked_per_s']['median'])} ({_fmt(s['noop_batch_checked_per_s']['median'])})",
            )
        )
        rows.append(
            (
                "3 no-op",
                f"  {key}: TTS calls / synthesize() calls / files rewritten",
                f"{s['noop_tts_calls']} / {s['noop_synthesize_calls']} / {s['noop_files_rewritten'] + s['noop_written']}",
            )
        )
    for key in ("stems_offline", "stems_cartesia"):
        st = sc.get(key)
        if not st:
            continue
        if not st.get("ok"):
            rows.append(("4 stems", key, f"FAILED: {st.get('error')}"))
            continue
        s = st["summary"]
        extra = ""
        if key == "stems_cartesia":
            extra = (
                f"; ideal {_fmt(s['ideal_stems_per_s'])}/s (cap {st['cap']} / {st['latency_s']} s) → "
                f"{_fmt(s['fraction_of_ideal'])} (asset body alone {_fmt(s.get('body_fraction_of_ideal'))}); "
                f"max in flight {s['max_in_flight']}, 429s {s['rejected_429']}"
            )
        rows.append(
            (
                "4 stems",
                f"{key}: {int(s['tts_calls_per_run'])} stems/run",
                f"{_fmt(s['stems_per_s']['median'])} stems/s incl. Dagster{extra}",
            )
        )
    pip = sc.get("tts_piper")
    if pip and not pip.get("ok"):
        rows.append(("6 piper", "tts_piper", f"FAILED: {pip.get('error')}"))
    elif pip and pip.get("skipped"):
        rows.append(("6 piper", "tts_piper", f"skipped: {pip['skipped']}"))
    elif pip:
        rows.append(
            (
                "6 piper",
                f"{pip['texts']} English stems ({pip['characters']} chars), {pip['threads']} threads, {pip['cpus']} CPUs",
                "deterministic: " + ", ".join(f"{k} {_fmt(v)}" for k, v in pip["deterministic"].items()),
            )
        )
        for name, s in pip["summary"].items():
            rows.append(
                (
                    "6 piper",
                    f"  {name}: stems/s 1 thread / {pip['threads']} threads",
                    f"{_fmt(s['stems_per_s_sequential']['median'])} / {_fmt(s['stems_per_s_parallel']['median'])}; "
                    f"RTF {_fmt(s['rtf_sequential']['median'], 4)} / {_fmt(s['rtf_parallel']['median'], 4)}; "
                    f"cold first stem {_fmt(s['cold_first_stem_s']['median'], 3)} s",
                )
            )
        r = pip["ratios"]
        rows.append(
            (
                "6 piper",
                "  ratio piper ÷ espeak-ng stems/s (1 thread / parallel)",
                f"{_fmt(r['piper_vs_espeak_stems_per_s_sequential'], 3)} / {_fmt(r['piper_vs_espeak_stems_per_s_parallel'], 3)}",
            )
        )
    scale = sc.get("scale")
    if scale and not scale.get("sizes"):
        rows.append(("7 scale", "scale", f"FAILED: {scale.get('error')}"))
    elif scale:
        rows.append(
            (
                "7 scale",
                f"names × {scale['developers']} developers × {scale['templates']} templates, instant fake TTS "
                f"({scale['stem_ms']} ms tone stems)",
                "sqlite | Postgres (throwaway server)",
            )
        )
        for why in (scale.get("skipped") or {}).values():
            rows.append(("7 scale", "  Postgres", f"SKIPPED: {why}"))
        for backend, by_n in scale["backends"].items():
            for n, r in by_n.items():
                if not r.get("ok"):
                    rows.append(("7 scale", f"  {backend} {int(n):,} names", f"FAILED: {r.get('error')}"))
        ssum = scale.get("summary") or {}
        sizes = sorted({int(n) for e in ssum.values() if isinstance(e, dict) for n in (e.get("by_names") or {})})

        def cell(n: int, fn) -> str:
            vals = []
            for backend in ("sqlite", "postgres"):
                r = ((ssum.get(backend) or {}).get("by_names") or {}).get(str(n))
                vals.append(fn(r) if r else "—")
            return " | ".join(vals)

        for n in sizes:
            lab = f"  {n:,} names:"
            rows.append(
                (
                    "7 scale",
                    f"{lab} cold stems runs s (stems/s; ÷ engine alone)",
                    cell(n, lambda r: f"{_fmt(r['cold_stems_s'])} s ({_fmt(r['stems_per_s'])}/s; ×{r['vs_engine_alone']:.2g})"),
                )
            )
            rows.append(
                (
                    "7 scale",
                    f"{lab} Dagster bookkeeping per name partition",
                    cell(n, lambda r: f"{_fmt(r['bookkeeping_per_name_partition_ms'])} ms"),
                )
            )
            rows.append(
                (
                    "7 scale",
                    f"{lab}   of which add_asset_metadata (O(partitions) per call)",
                    cell(n, lambda r: f"{_fmt(r['add_metadata_per_name_partition_ms'])} ms"),
                )
            )
            rows.append(
                (
                    "7 scale",
                    f"{lab} no-op batch s (messages, checked/s; ÷ stat-only)",
                    cell(
                        n,
                        lambda r: (
                            f"{_fmt(r['noop_s'])} s ({r['noop_messages']:,}, {_fmt(r['noop_checked_per_s'])}/s; ×{r['noop_vs_stat_baseline']:.2g})"
                        ),
                    ),
                )
            )
            rows.append(
                (
                    "7 scale",
                    f"{lab} no-op 1M messages (MEASURED, or EXTRAPOLATED: extrap.)",
                    cell(n, lambda r: f"{_fmt(r['noop_1m_s'])} s{'' if r['noop_1m_measured'] else ' (extrap.)'}"),
                )
            )
            rows.append(("7 scale", f"{lab} peak RSS", cell(n, lambda r: f"{_fmt(r['peak_rss_mb'])} MB")))
        mem = [
            f"{b} ×{_fmt((ssum.get(b) or {}).get('memory_ratio', {}).get('peak_rss_ratio'))}" for b in ("sqlite", "postgres") if b in ssum
        ]
        if mem:
            rows.append(("7 scale", "  peak RSS largest ÷ smallest N", ", ".join(mem)))
        for line in scale_verdict(scale):
            rows.append(("7 scale", "  verdict", line))
    if sc.get("partitions"):
        from bench.partition_bench import table_rows

        rows += table_rows(sc["partitions"], _fmt)
    scal = report.get("scaling")
    if scal:
        rows.append(
            (
                "5 scaling",
                f"{scal['large_messages']:,} vs {scal['small_messages']:,} messages",
                f"throughput ×{_fmt(scal['throughput_ratio'])}, peak RSS ×{_fmt(scal['peak_rss_ratio'])}",
            )
        )
    w1 = max(len(r[0]) for r in rows) if rows else 0
    w2 = max(len(r[1]) for r in rows) if rows else 0
    lines = [f"{a:<{w1}}  {b:<{w2}}  {c}" for a, b, c in rows]
    lines.append("")
    lines.append("targets")
    for t in report["targets"]:
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[t["pass"]]
        lines.append(f"  {mark}  {t['what']}: {_fmt(t['value'])} (target {t['op']} {_fmt(t['target'])})")
    return "\n".join(lines)
