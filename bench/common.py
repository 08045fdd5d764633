"""Helpers shared by the benchmark scenarios: statistics, scratch space, synthetic data, RSS."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Self

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCRATCH = Path(tempfile.gettempdir())


# --------------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def spread(values: Sequence[float]) -> dict:
    """Median plus min/max so a reader can judge the noise of a figure."""
    if not values:
        return {"median": None, "min": None, "max": None, "runs": 0}
    return {"median": median(values), "min": min(values), "max": max(values), "runs": len(values)}


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Self:
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t


# --------------------------------------------------------------------------- scratch space


@contextlib.contextmanager
def scratch_dir(base: str | os.PathLike | None = None, prefix: str = "hybrid-bench-") -> Iterator[Path]:
    """A fresh directory below ``base`` (default: the system temp dir), removed on exit."""
    base = Path(base or DEFAULT_SCRATCH)
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def clear_dir(path: Path) -> None:
    """Remove everything below ``path`` (keeps ``path``)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def filesystem_of(path: str | os.PathLike) -> dict:
    """Mount point and type of the filesystem holding ``path`` (from /proc/mounts)."""
    path = os.path.realpath(path)
    best = ("/", "unknown")
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt, fstype = parts[1], parts[2]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                    best = (mnt, fstype)
    except OSError:
        pass
    return {"mount": best[0], "type": best[1]}


# --------------------------------------------------------------------------- synthetic datasets

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "br", "tr"]
_VOWELS = ["a", "e", "i", "o", "u"]
_SYLLABLES = [o + v for o, v in itertools.product(_ONSETS, _VOWELS)]  # 90 syllables


def synthetic_names(n: int, *, syllables: int = 3, offset: int = 0) -> list[str]:
    """``n`` distinct pronounceable names of letters only ("Kalomi"), distinct after folding.

    Every syllable is onset + vowel, so a word parses into syllables one way only: distinct
    syllable sequences spell distinct lowercase ASCII words, which case/accent folding keeps
    distinct (the dataset validation rejects digits in names, hence no "Name123").
    """
    out: list[str] = []
    seen: set[str] = set()
    for combo in itertools.product(_SYLLABLES, repeat=syllables):
        if len(out) >= n + offset:
            break
        word = "".join(combo)
        if word in seen:
            continue
        seen.add(word)
        out.append(word.capitalize())
    if len(out) < n + offset:
        raise ValueError(f"cannot make {n + offset} names of {syllables} syllables")
    return out[offset : offset + n]


def synthetic_developers(n: int) -> list[str]:
    """``n`` distinct brand-like developer names of letters only ("Kalomi Resorts")."""
    suffixes = ["Resorts", "Vacations", "Club", "Villas", "Holidays"]
    stems = synthetic_names(n, syllables=2, offset=7)
    return [f"{s} {suffixes[i % len(suffixes)]}" for i, s in enumerate(stems)]


# --------------------------------------------------------------------------- memory


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) so the next reading covers only what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak RSS of this process in MB (VmHWM, resettable; falls back to ru_maxrss)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# --------------------------------------------------------------------------- environment


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def environment(scratch: Path) -> dict:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "scratch": str(scratch),
        "scratch_fs": filesystem_of(scratch),
        "packages": {d: _version(d) for d in ("dagster", "numpy", "soundfile", "pydub", "psutil", "httpx", "hybrid-audio-dagster")},
        "sox": shutil.which("sox"),
        "ffmpeg": shutil.which("ffmpeg"),
    }


def dump_json(obj: object) -> str:
    return json.dumps(obj, indent=1, sort_keys=False, default=str)


# --------------------------------------------------------------------------- child processes


def run_child(out: str | os.PathLike, measure, **on_error) -> int:
    """Run a bench child's measurement and leave its result (or the error, with ``on_error``'s
    fields) as JSON in ``out`` for the parent; the exit status says which."""
    import traceback

    try:
        result = measure()
        result.setdefault("ok", True)
    except Exception as exc:  # noqa: BLE001 - the parent reads the error from the JSON
        result = {**on_error, "ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    result["process_peak_rss_mb"] = peak_rss_mb()
    Path(out).write_text(json.dumps(result, indent=1, default=str))
    return 0 if result["ok"] else 1
