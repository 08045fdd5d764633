"""Benchmark: piper-tts stems/s and real-time factor, with espeak-ng as the baseline.

Both engines synthesize the same English stem texts (the ``followup-en`` template's segments
rendered with the sample names and developers), in the same process, one after the other,
``--reps`` times in alternating order:

* cold: a fresh engine's first stem (piper: hashing the voice file, loading the onnx model);
* sequential: one text after another on one thread;
* parallel: the same texts on ``--threads`` threads (piper runs one inference per core;
  espeak-ng serializes every call behind its process-wide lock).

stems/s = texts / wall time; RTF (real-time factor) = wall time / seconds of audio made
(below 1 is faster than real time). Ratios (piper ÷ espeak-ng) are per repetition, then the
median. Every text is synthesized twice per engine and the bytes compared (determinism).

    .venv/bin/python -m bench.bench_piper [--texts 40] [--reps 3] [--out bench/results/piper.json]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PROJECT_ROOT, median, spread  # noqa: E402
from hybrid_audio_dagster.core.tts.base import VoiceSettings  # noqa: E402

EN = VoiceSettings(language="en")


def stem_texts(count: int) -> list[str]:
    """``count`` distinct English stem texts, as a batch would send them."""
    from hybrid_audio_dagster.core.template_fields import SegmentKind
    from hybrid_audio_dagster.core.templates import load_templates

    template = load_templates(PROJECT_ROOT / "templates")["followup-en"]

    def column(path: Path) -> list[str]:
        with path.open(encoding="utf-8") as f:
            return [row[0] for row in list(csv.reader(f))[1:] if row]

    names, devs = column(PROJECT_ROOT / "data" / "names.csv"), column(PROJECT_ROOT / "data" / "developers.csv")
    texts: list[str] = []
    for seg in template.segments:
        if seg.kind is SegmentKind.SCRIPT:
            texts.append(seg.render())
    pools = [
        [s.render(name=n) for n in names for s in template.segments if s.kind is SegmentKind.NAME],
        [s.render(developer=d) for d in devs for s in template.segments if s.kind is SegmentKind.DEVELOPER],
    ]
    i = 0
    while len(texts) < count and any(pools):
        pool = pools[i % 2]
        if pool:
            texts.append(pool.pop(0))
        i += 1
    out = list(dict.fromkeys(texts))[:count]
    return out


def _audio_seconds(wav: bytes) -> float:
    from hybrid_audio_dagster.core.audio.wav import parse_wav

    audio = parse_wav(wav)
    return audio.frames / audio.sample_rate


def _measure(make_engine: Callable[[], object], texts: list[str], threads: int) -> dict:
    t0 = time.perf_counter()
    engine = make_engine()
    first = engine.synthesize(texts[0], EN)  # type: ignore[attr-defined]
    cold_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    seq = [engine.synthesize(t, EN) for t in texts]  # type: ignore[attr-defined]
    seq_s = time.perf_counter() - t0
    audio_s = sum(_audio_seconds(w) for w in seq)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        par = list(pool.map(lambda t: engine.synthesize(t, EN), texts))  # type: ignore[attr-defined]
    par_s = time.perf_counter() - t0
    return {
        "cold_first_stem_s": cold_s,
        "sequential_s": seq_s,
        "parallel_s": par_s,
        "audio_s": audio_s,
        "stems_per_s_sequential": len(texts) / seq_s,
        "stems_per_s_parallel": len(texts) / par_s,
        "rtf_sequential": seq_s / audio_s,
        "rtf_parallel": par_s / audio_s,
        "byte_identical": seq == par and seq[0] == first,
        "sha256": [hashlib.sha256(w).hexdigest() for w in seq],
    }


def run(texts: int = 40, reps: int = 3, threads: int = 2, log: Callable[[str], None] = lambda m: None) -> dict:
    """Measure both engines; return the report section (``ok`` False with ``error`` on failure)."""
    from hybrid_audio_dagster.core.tts.piper import INSTALL_HINT, PiperEngine, piper_available

    if not piper_available():
        return {"ok": True, "skipped": f"piper-tts not installed ({INSTALL_HINT})"}
    from hybrid_audio_dagster.core.tts.espeak import EspeakEngine

    sample = stem_texts(texts)
    engines: dict[str, Callable[[], object]] = {
        "piper": lambda: PiperEngine(max_concurrency=threads),
        "espeak-ng": EspeakEngine,
    }
    runs: dict[str, list[dict]] = {k: [] for k in engines}
    order = list(engines)
    for rep in range(reps):
        for key in order if rep % 2 == 0 else order[::-1]:
            log(f"  piper bench rep {rep + 1}/{reps}: {key}, {len(sample)} stems ...")
            runs[key].append(_measure(engines[key], sample, threads))
    deterministic = {k: all(r["byte_identical"] for r in v) and len({tuple(r["sha256"]) for r in v}) == 1 for k, v in runs.items()}

    def stat(key: str, field: str) -> dict:
        return spread([r[field] for r in runs[key]])

    fields = ("cold_first_stem_s", "stems_per_s_sequential", "stems_per_s_parallel", "rtf_sequential", "rtf_parallel")
    summary = {k: {f: stat(k, f) for f in fields} | {"audio_s": runs[k][0]["audio_s"]} for k in engines}
    ratio = lambda f: median([p[f] / e[f] for p, e in zip(runs["piper"], runs["espeak-ng"], strict=True)])  # noqa: E731
    for r in runs.values():
        for x in r:
            x.pop("sha256")
    return {
        "ok": True,
        "texts": len(sample),
        "characters": sum(len(t) for t in sample),
        "threads": threads,
        "cpus": os.cpu_count(),
        "reps": reps,
        "summary": summary,
        "deterministic": deterministic,
        "ratios": {
            "piper_vs_espeak_stems_per_s_sequential": ratio("stems_per_s_sequential"),
            "piper_vs_espeak_stems_per_s_parallel": ratio("stems_per_s_parallel"),
            "piper_vs_espeak_rtf_parallel": ratio("rtf_parallel"),
        },
        "runs": runs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=40, help="distinct stem texts per pass")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="threads of the parallel pass (= piper max_concurrency)")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    try:
        result = run(args.texts, args.reps, args.threads, log=lambda m: print(m, file=sys.stderr, flush=True))
    except Exception as exc:  # noqa: BLE001 - reported to bench.run
        import traceback

        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        print(text)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
