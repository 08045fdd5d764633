"""Helpers shared by the tests that build a throwaway project folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hybrid_audio_dagster.defs.messages.checks import verify_partition
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import OfflineTTSResource
from testkit.project import make_project


class NoCallTTS(OfflineTTSResource):
    """The offline engine's contract, but any synthesis fails the test (warm-cache checks)."""

    def synthesize(self, text, voice):
        raise AssertionError(f"unexpected TTS call for {text!r}")


def pack(samples: np.ndarray, fmt: str) -> bytes:
    """Interleaved little-endian frame bytes of ``samples`` (frames, channels), written
    independently of the code under test."""
    if fmt == "pcm_s16le":
        return np.ascontiguousarray(samples, dtype="<i2").tobytes()
    if fmt == "pcm_s32le":
        return np.ascontiguousarray(samples, dtype="<i4").tobytes()
    if fmt == "pcm_f32le":
        return np.ascontiguousarray(samples, dtype="<f4").tobytes()
    v = np.ascontiguousarray(samples, dtype="<i4").reshape(-1)
    return v.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def project_env(root: Path, names: list[str], developers: list[str], *, variants: bool = False):
    """(root, paths, resources with the offline engine, an ephemeral instance)."""
    import dagster as dg

    from hybrid_audio_dagster.defs.resources.budget import SpendGuardResource
    from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource

    paths = make_project(root, names, developers, variants=variants)
    resources = {"paths": paths, "tts": OfflineTTSResource(), "spend_guard": SpendGuardResource(), "gcs": DeliveryResource()}
    return root, paths, resources, dg.DagsterInstance.ephemeral()


def run_requests(defs, instance, requests) -> list:
    """Execute run requests the way the daemon would launch them (one run each, in order)."""
    results = []
    for req in requests:
        job = defs.resolve_job_def(req.job_name)
        results.append(
            job.execute_in_process(
                instance=instance,
                run_config=req.run_config or {},
                tags=req.tags,
                partition_key=req.partition_key,
                raise_on_error=False,
            )
        )
    return results


def sensor_requests(defs, instance, name: str, cursor: str | None = None) -> list:
    """Evaluate a sensor of ``defs`` once against ``instance``; its run requests."""
    import dagster as dg

    sensor = defs.get_sensor_def(name)
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources) as context:
        result = sensor(context)
    if result is None or isinstance(result, dg.SkipReason):
        return []
    if isinstance(result, dg.SensorResult):
        return list(result.run_requests or [])
    return list(result) if isinstance(result, list) else [result]


def drive_pipelines(defs, instance, first_requests, *, max_ticks: int = 10) -> list:
    """Launch ``first_requests``, then tick ``pipeline_sensor`` and launch what it asks for,
    until it asks for nothing: the daemon's loop, one process. Returns every run result."""
    results = run_requests(defs, instance, first_requests)
    for _ in range(max_ticks):
        requests = sensor_requests(defs, instance, "pipeline_sensor")
        if not requests:
            return results
        results += run_requests(defs, instance, requests)
    raise AssertionError(f"pipeline_sensor still asks for runs after {max_ticks} ticks")


class CountingTTS(OfflineTTSResource):
    """The offline engine, appending every synthesized text to ``log_path`` (one line each)
    and refusing the texts in ``fail_on`` (a TTS failure mid-run)."""

    log_path: str
    fail_on: list[str] = []

    def synthesize(self, text, voice):
        from hybrid_audio_dagster.core.tts.base import TTSError

        if text in self.fail_on:
            raise TTSError(f"402 payment required (simulated) for {text!r}")
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(text.replace("\n", " ") + "\n")
        return super().synthesize(text, voice)


def batched_campaign(tmp_path: Path, names: list[str], developers: list[str]):
    """A project after its first ``make batch`` (offline engine counting its calls in
    ``.log``): root, paths, resources, instance, log, and the first batch's summary."""
    from types import SimpleNamespace

    from hybrid_audio_dagster.runner.batch import run_full_batch

    root, paths, resources, instance = project_env(tmp_path / "project", names, developers)
    log = tmp_path / "tts.log"
    resources = {**resources, "tts": CountingTTS(log_path=str(log))}
    first = run_full_batch(instance, resources)
    return SimpleNamespace(root=root, paths=paths, resources=resources, instance=instance, log=log, first=first)


def calls(log_path) -> list[str]:
    from pathlib import Path

    p = Path(log_path)
    return p.read_text(encoding="utf-8").splitlines() if p.exists() else []


def all_messages_verified(paths: ProjectPaths, instance) -> int:
    """Every message of every templates × developers partition verifies bit-exactly; how many."""
    total = 0
    for tid in instance.get_dynamic_partitions("templates"):
        for dev in instance.get_dynamic_partitions("developers"):
            checked, problems = verify_partition(paths, tid, dev)
            assert problems == []
            total += checked
    return total
