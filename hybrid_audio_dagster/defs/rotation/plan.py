"""What a rotation tick plans: its settings (:class:`RotationSettings`), the messages runs
it asks for (:class:`PlannedRequest`), its record in the retry ledger (:class:`TickPlan`),
the tick's identity (:func:`tick_key`), run keys and the tags that tie runs to requests.

Used by :mod:`hybrid_audio_dagster.defs.rotation.reconcile` (reconciling and planning) and :mod:`hybrid_audio_dagster.defs.rotation.tick`
(the tick, the schedule and the CLI operations), which re-exports every name.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from hybrid_audio_dagster.core.rotation.campaign import rotation_seed, rotation_templates
from hybrid_audio_dagster.defs.messages.jobs import MESSAGES_JOB
from hybrid_audio_dagster.defs.partitions import message_partition_key
from hybrid_audio_dagster.defs.tags import TRIGGER_TAG

DEFAULT_BATCH_SIZE = 50
BATCH_ENV = "HYBRID_AUDIO_ROTATION_BATCH"

BATCH_TAG = "hybrid_audio/rotation_batch"  # seq of the rotation batch of the tick
TICK_TAG = "hybrid_audio/rotation_tick"  # the tick (UTC ISO) or the CLI call time
REQUEST_TAG = "hybrid_audio/rotation_request"  # the request's run key: matches runs to ledger entries
ATTEMPT_TAG = "hybrid_audio/rotation_attempt"

Triple = tuple[str, str, str]  # (name, developer, template)


@dataclass(frozen=True)
class RotationSettings:
    """Tunables of a rotation tick.

    Attributes:
        batch_size: pairs per tick (K); None reads ``HYBRID_AUDIO_ROTATION_BATCH`` (default 50).
        seed: the rotation seed; None reads ``HYBRID_AUDIO_ROTATION_SEED`` (default constant).
        templates: the template keys the scripts stream draws from (``<id>*``: a template and
            its variants, an A/B stream); None reads ``HYBRID_AUDIO_ROTATION_TEMPLATES``;
            empty means every template and variant.
        max_attempts: failed runs after which a pair is abandoned (reported, not retried).
        launch_grace_s: a request without any run this long after it was issued is
            treated as a failed attempt ("never launched").
    """

    batch_size: int | None = None
    seed: str | None = None
    templates: tuple[str, ...] | None = None
    max_attempts: int = 5
    launch_grace_s: float = 3600.0

    def resolved_batch_size(self, env: Mapping[str, str] | None = None) -> int:
        if self.batch_size is not None:
            k = self.batch_size
        else:
            env = os.environ if env is None else env
            raw = env.get(BATCH_ENV) or str(DEFAULT_BATCH_SIZE)
            try:
                k = int(raw)
            except ValueError:
                raise ValueError(f"{BATCH_ENV} must be a positive integer, got {raw!r}") from None
        if isinstance(k, bool) or k < 1:
            raise ValueError(f"the rotation batch size must be a positive integer, got {k!r}")
        return k

    def resolved_seed(self) -> str:
        return rotation_seed() if self.seed is None else self.seed

    def resolved_templates(self) -> list[str]:
        return rotation_templates() if self.templates is None else list(self.templates)


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class PlannedRequest:
    """One messages run of a tick: a template × developer partition, restricted to ``names``."""

    run_key: str
    template: str
    developer: str
    names: tuple[str, ...]
    attempt: int
    batch_seq: int
    tick: str

    @property
    def job_name(self) -> str:
        return MESSAGES_JOB

    @property
    def partition_key(self) -> str:
        return str(message_partition_key(self.template, self.developer))

    @property
    def run_config(self) -> dict[str, Any]:
        return {"ops": {"messages": {"config": {"names": list(self.names), "force": False}}}}

    @property
    def tags(self) -> dict[str, str]:
        return {
            TRIGGER_TAG: "rotation",
            BATCH_TAG: str(self.batch_seq),
            TICK_TAG: self.tick,
            REQUEST_TAG: self.run_key,
            ATTEMPT_TAG: str(self.attempt),
        }

    def to_run_request(self) -> dg.RunRequest:
        return dg.RunRequest(
            run_key=self.run_key,
            job_name=self.job_name,
            partition_key=message_partition_key(self.template, self.developer),
            run_config=self.run_config,
            tags=self.tags,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_key": self.run_key,
            "template": self.template,
            "developer": self.developer,
            "names": list(self.names),
            "attempt": self.attempt,
            "batch_seq": self.batch_seq,
            "tick": self.tick,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PlannedRequest":
        return cls(d["run_key"], d["template"], d["developer"], tuple(d["names"]), d["attempt"], d["batch_seq"], d["tick"])


@dataclass
class TickPlan:
    """What one tick decided (stored in the ledger; a re-evaluation returns it again)."""

    tick: str
    batch: dict[str, Any]  # seq, cycle/cursor before and after, count, skipped, replayed
    requests: list[PlannedRequest]
    deferred: list[dict[str, Any]] = field(default_factory=list)  # pairs waiting for stems
    retried: int = 0  # ledger pairs included in this tick's requests
    abandoned: list[dict[str, Any]] = field(default_factory=list)  # given up this tick
    reconciled: dict[str, Any] = field(default_factory=dict)  # outcome of earlier requests
    replayed: bool = False  # True when the tick had been evaluated before

    @property
    def run_keys(self) -> list[str]:
        return [r.run_key for r in self.requests]

    def run_requests(self) -> list[dg.RunRequest]:
        return [r.to_run_request() for r in self.requests]

    def summary(self) -> str:
        b = self.batch
        pairs = sum(len(r.names) for r in self.requests)
        text = (
            f"tick {self.tick}: batch {b.get('seq')} ({b.get('count')} pairs, cycle {b.get('cycle_after')} at "
            f"{b.get('cursor_after')}/{b.get('cycle_length')}); {len(self.requests)} run(s) for {pairs} pair(s), "
            f"{self.retried} retried, {len(self.deferred)} deferred (stems missing), {len(self.abandoned)} abandoned"
        )
        return text + (" [replayed]" if self.replayed else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "tick": self.tick,
            "batch": self.batch,
            "requests": [r.to_dict() for r in self.requests],
            "deferred": self.deferred,
            "retried": self.retried,
            "abandoned": self.abandoned,
            "reconciled": self.reconciled,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, replayed: bool = False) -> "TickPlan":
        return cls(
            tick=d["tick"],
            batch=d["batch"],
            requests=[PlannedRequest.from_dict(r) for r in d["requests"]],
            deferred=list(d.get("deferred", [])),
            retried=d.get("retried", 0),
            abandoned=list(d.get("abandoned", [])),
            reconciled=dict(d.get("reconciled", {})),
            replayed=replayed,
        )


def tick_key(when: datetime) -> str:
    """The tick's identity: its scheduled time in UTC, ISO 8601 (naive times are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def request_run_key(tick: str, template: str, developer: str, attempt: int) -> str:
    base = f"rotation:{tick}:{template}:{developer}"
    return base if attempt <= 1 else f"{base}:attempt{attempt}"
