"""Instrumentation and setup shared by the Dagster bench scenarios (:mod:`bench.dagster_bench`,
:mod:`bench.stems_bench`): a probe that times project functions from inside a run, a temp
project and instance, and a run's step timing and event counts read from its event log.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

from bench.common import PROJECT_ROOT

TEMPLATE_ID = "followup-en"


# --------------------------------------------------------------------------- instrumentation


class Probe:
    """Wraps a few functions of the project to time them from inside a Dagster run.

    Only attribute look-ups are replaced (module globals, class methods); nothing of the
    project is edited. A wrapped function costs two ``perf_counter`` calls more (~0.1 µs).
    Where a name no longer exists the probe is skipped and reported as unavailable.
    """

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.runs: list[dict] = []
        self.available: dict[str, bool] = {}
        self._lock = threading.Lock()

    def wrap(self, owner: object, attr: str, label: str) -> None:
        fn = getattr(owner, attr, None)
        self.available[label] = fn is not None
        if fn is None:
            return
        probe = self

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t
                with probe._lock:
                    probe.seconds[label] += dt
                    probe.calls[label] += 1

        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        setattr(owner, attr, timed)

    def wrap_materialize(self) -> None:
        """Time every ``dg.materialize`` call (each is one Dagster run) and note what it ran."""
        import dagster as dg

        orig = dg.materialize
        probe = self

        def materialize(assets, *args, selection=None, **kwargs):
            t = time.perf_counter()
            res = orig(assets, *args, selection=selection, **kwargs)
            seconds = time.perf_counter() - t
            # what the run materialized (the selection may be a list or an AssetSelection)
            names = sorted({e.asset_key.to_user_string() for e in res.get_asset_materialization_events()})
            probe.runs.append({"assets": names, "seconds": seconds, "run_id": res.run_id})
            return res

        dg.materialize = materialize

        # the batch launches its stage runs through batch._execute (job.execute_in_process)
        import hybrid_audio_dagster.runner.batch as batch_mod

        orig_execute = batch_mod._execute

        def execute(*args, **kwargs):
            t = time.perf_counter()
            res = orig_execute(*args, **kwargs)
            seconds = time.perf_counter() - t
            names = sorted({e.asset_key.to_user_string() for e in res.get_asset_materialization_events()})
            probe.runs.append({"assets": names, "seconds": seconds, "run_id": res.run_id})
            return res

        batch_mod._execute = execute

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.runs.clear()


def install_probes() -> Probe:
    import hybrid_audio_dagster.core.messages.build as messages_mod
    import hybrid_audio_dagster.defs.metadata_index as cache_index_mod
    from hybrid_audio_dagster.core.audio.assemble import AssembledMessage
    from hybrid_audio_dagster.defs.resources.tts import TTSResource

    probe = Probe()
    probe.wrap_materialize()
    probe.wrap(messages_mod, "_plan_one", "per_message")  # everything done for one message
    probe.wrap(messages_mod, "build_message", "assemble")  # core.messages.build_message → assemble
    probe.wrap(AssembledMessage, "write", "write")  # atomic write + sha256
    probe.wrap(cache_index_mod, "latest_metadata", "cache_index_read")
    probe.wrap(messages_mod, "read_manifest", "manifest_read")
    probe.wrap(TTSResource, "synthesize", "tts_synthesize")  # every engine call, whatever the resource
    return probe


# --------------------------------------------------------------------------- project setup


def make_instance(home: Path):
    """A persistent sqlite instance in ``home``, configured like deploy/dagster.yaml."""
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def run_events(instance, run_id: str) -> dict:
    """Step timing and event counts of one run, from its event log."""
    logs = instance.all_logs(run_id)
    kinds: Counter[str] = Counter()
    step_start = step_end = run_start = run_end = None
    body_s = None
    for e in logs:
        ev = e.dagster_event
        if ev is None:
            m = re.search(r" in (\d+(?:\.\d+)?)s$", e.user_message or "")
            if m and "partitions" in (e.user_message or ""):
                body_s = float(m.group(1))
            kinds["log_message"] += 1
            continue
        k = ev.event_type_value
        kinds[k] += 1
        if k == "STEP_START":
            step_start = e.timestamp
        elif k == "STEP_SUCCESS":
            step_end = e.timestamp
        elif k == "RUN_START":
            run_start = e.timestamp
        elif k in ("RUN_SUCCESS", "RUN_FAILURE"):
            run_end = e.timestamp
    return {
        "events": sum(kinds.values()),
        "by_type": dict(kinds),
        "step_s": (step_end - step_start) if step_start and step_end else None,
        "run_events_s": (run_end - run_start) if run_start and run_end else None,
        "asset_body_s": body_s,  # the messages asset's own "in X.XXs" log line
    }


def mtimes(root: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.endswith(".wav"):
                p = os.path.join(dirpath, f)
                out[p] = os.stat(p).st_mtime_ns
    return out
