"""Scenario 1: the audio core against the obvious alternatives, on the same messages.

Every approach builds the same messages (same stems, trims, pauses, lead and tail) from
stems already in memory and writes one WAV file per message into a scratch folder that is
emptied between repetitions (untimed), so live output stays at one batch. Approaches run
interleaved, in a rotating order, and each comparison is the median of the ratios measured
within the same repetition.

* ``core``: what the messages asset does per message: ``assemble`` + ``AssembledMessage.write``
  (atomic temp file + rename, sha256 of the parts from memory).
* ``numpy_soundfile`` (baseline a): ``np.concatenate`` of the int16 arrays + ``soundfile.write``.
  libsndfile fsyncs every file on close: free on tmpfs, costly on a disk.
* ``numpy_write`` (diagnostic): the same concatenation, 44-byte header + plain ``write``
  (no fsync, no rename, no hash): the floor a Python loop can reach.
* ``core_nohash`` (diagnostic): ``assemble`` + the atomic write without the sha256.
* ``pydub`` (baseline b): ``AudioSegment`` slices ``+`` silence, ``export(format="wav")``.
* ``sox`` / ``ffmpeg`` (baseline c): one process per message, if the binary is installed.

The messages are :mod:`bench.workload`, the approaches :mod:`bench.approaches`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from bench.approaches import APPROACHES, EXTERNAL, available, setup_core_assemble_only
from bench.common import Stopwatch, clear_dir, median, spread
from bench.workload import RATE, MessageSpec, make_workload

# --------------------------------------------------------------------------- running


def _verify_identical(specs: list[MessageSpec], writers: dict[str, Callable], workdir: Path, k: int) -> dict:
    """Write the first ``k`` messages with every approach; compare the files byte for byte."""
    ref_dir = workdir / "verify"
    clear_dir(ref_dir)
    result: dict[str, dict] = {}
    reference: list[bytes] = []
    for i, spec in enumerate(specs[:k]):
        path = ref_dir / f"core-{i}.wav"
        writers["core"](spec, path)
        reference.append(path.read_bytes())
        assert len(reference[-1]) == spec.nbytes, (len(reference[-1]), spec.nbytes)
    for name, write in writers.items():
        if name == "core":
            continue
        same = 0
        first_diff = None
        for i, spec in enumerate(specs[:k]):
            path = ref_dir / f"{name}-{i}.wav"
            write(spec, path)
            data = path.read_bytes()
            if data == reference[i]:
                same += 1
            elif first_diff is None:
                at = next((j for j, (a, b) in enumerate(zip(data, reference[i])) if a != b), min(len(data), len(reference[i])))
                first_diff = {"message": i, "byte": at, "size": len(data), "expected_size": len(reference[i])}
        result[name] = {"compared": k, "identical": same, "byte_identical": same == k, "first_difference": first_diff}
    shutil.rmtree(ref_dir, ignore_errors=True)
    return result


def run(scratch: Path, *, messages: int, reps: int, external_messages: int, verify_messages: int = 8, log=print) -> dict:
    """Run scenario 1; return its section of the report."""
    skipped = {k: v for k, v in available().items() if v}
    names = [n for n in APPROACHES if n not in skipped]
    specs = make_workload(max(messages, external_messages, verify_messages))
    msg_bytes = specs[0].nbytes
    work = scratch / "core"
    clear_dir(work)
    writers = {n: APPROACHES[n](specs, work / "setup") for n in names}
    writers_diag = {"core_assemble_only": setup_core_assemble_only(specs, work / "setup")}

    identical = _verify_identical(specs, writers, work, verify_messages)
    out_dir = work / "out"

    def timed(name: str, write: Callable, n: int) -> float:
        clear_dir(out_dir)
        batch = specs[:n]
        paths = [out_dir / f"m{i}.wav" for i in range(n)]
        with Stopwatch() as sw:
            for spec, path in zip(batch, paths):
                write(spec, path)
        clear_dir(out_dir)  # untimed: keeps live output to one batch
        return sw.seconds

    # warm-up: caches (zeros, pydub segments), page cache, allocator
    for name in names:
        timed(name, writers[name], min(20, messages) if name not in EXTERNAL else 2)
    per_rep: dict[str, list[float]] = {n: [] for n in [*names, *writers_diag]}
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            n = external_messages if name in EXTERNAL else messages
            per_rep[name].append(n / timed(name, writers[name], n))
        for name, write in writers_diag.items():
            per_rep[name].append(messages / timed(name, write, messages))
        log(f"  core rep {rep + 1}/{reps}: " + ", ".join(f"{n} {per_rep[n][-1]:,.0f}/s" for n in order))
    shutil.rmtree(work, ignore_errors=True)

    approaches = {}
    for name, values in per_rep.items():
        approaches[name] = {
            "messages_per_s": spread(values),
            "mb_per_s": median(values) * msg_bytes / 1e6 if name != "core_assemble_only" else None,
            "messages": external_messages if name in EXTERNAL else messages,
        }

    def ratio(a: str, b: str) -> float | None:
        if a not in per_rep or b not in per_rep:
            return None
        return median([x / y for x, y in zip(per_rep[a], per_rep[b])])

    return {
        "description": "assemble + AssembledMessage.write per message vs baselines, same messages, stems in memory",
        "message": {
            "sample_rate": RATE,
            "channels": 1,
            "sample_format": "pcm_s16le",
            "seconds": round(specs[0].frames / RATE, 3),
            "bytes": msg_bytes,
            "stems": len(specs[0].stems),
        },
        "reps": reps,
        "approaches": approaches,
        "skipped": skipped,
        "byte_identical": identical,
        "ratios": {
            "core_vs_numpy_soundfile": ratio("core", "numpy_soundfile"),
            "core_vs_numpy_write": ratio("core", "numpy_write"),
            "core_vs_pydub": ratio("core", "pydub"),
            "core_vs_pydub_reload": ratio("core", "pydub_reload"),
            "numpy_write_vs_pydub": ratio("numpy_write", "pydub"),
            "core_vs_sox": ratio("core", "sox"),
            "core_vs_ffmpeg": ratio("core", "ffmpeg"),
            "core_nohash_vs_numpy_write": ratio("core_nohash", "numpy_write"),
            "core_crc32c_vs_numpy_soundfile": ratio("core_crc32c", "numpy_soundfile"),
            "core_crc32c_vs_numpy_write": ratio("core_crc32c", "numpy_write"),
        },
    }


if __name__ == "__main__":  # pragma: no cover - manual use
    import json
    import sys

    from bench.common import scratch_dir

    with scratch_dir(sys.argv[1] if len(sys.argv) > 1 else None) as d:
        print(json.dumps(run(d, messages=500, reps=3, external_messages=20), indent=1))
