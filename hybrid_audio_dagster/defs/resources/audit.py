"""The audit log from inside a run: :class:`~.core.audit.Auditor` bound to the run's id and
trigger (the ``hybrid_audio/trigger`` tag, else the sensor or schedule that launched it,
else ``manual``)."""

from __future__ import annotations

import os

import dagster as dg

from hybrid_audio_dagster.core.audit import Auditor
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.tags import TRIGGER_TAG

_SECRET_VARS = ("CARTESIA_API_KEY",)  # redacted from every line, should one ever reach a value


def trigger_of(tags) -> str:
    return tags.get(TRIGGER_TAG) or tags.get("dagster/sensor_name") or tags.get("dagster/schedule_name") or "manual"


def run_auditor(context, paths: ProjectPaths) -> Auditor:
    """The auditor for the run of ``context`` (an op or asset execution context)."""
    run: dg.DagsterRun = context.run
    return Auditor(paths.logs, run_id=run.run_id, trigger=trigger_of(run.tags), redact=[os.environ.get(v, "") for v in _SECRET_VARS])
