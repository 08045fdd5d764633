"""The spend guard as a resource: character budgets for TTS spend, from the environment."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping

import dagster as dg
from pydantic import Field

from hybrid_audio_dagster.core.spend import Budget

AUTOMATED_TAGS = ("dagster/schedule_name", "dagster/sensor_name")
STEM_ASSET_KEYS = ("name_stems", "developer_stems", "script_stems")

ENV_PER_RUN = "HYBRID_AUDIO_MAX_CHARS_PER_RUN"
ENV_PER_AUTOMATED_RUN = "HYBRID_AUDIO_MAX_CHARS_PER_AUTOMATED_RUN"
ENV_PER_DAY = "HYBRID_AUDIO_MAX_CHARS_PER_DAY"
DEFAULT_PER_AUTOMATED_RUN = 50_000
DEFAULT_PER_DAY = 200_000


class SpendGuardResource(dg.ConfigurableResource):
    """Character budgets (0 = unlimited). Automated runs — launched by a schedule or a sensor,
    as Dagster's own run tags say — also have a per-run and a per-day (UTC) limit, so an
    unattended upload never bills more than the budget.

    Attributes:
        max_chars_per_run: any run.
        max_chars_per_automated_run: a run a schedule or a sensor launched.
        max_chars_per_day: automated runs stop once the day's sent characters would exceed it.
    """

    max_chars_per_run: int = Field(default=0, ge=0)
    max_chars_per_automated_run: int = Field(default=DEFAULT_PER_AUTOMATED_RUN, ge=0)
    max_chars_per_day: int = Field(default=DEFAULT_PER_DAY, ge=0)

    def budget(self, run_override: int | None = None) -> Budget:
        per_run = self.max_chars_per_run if run_override is None else run_override
        return Budget(per_run=per_run, per_automated_run=self.max_chars_per_automated_run, per_day_automated=self.max_chars_per_day)

    @staticmethod
    def is_automated(tags: Mapping[str, str]) -> bool:
        return any(t in tags for t in AUTOMATED_TAGS)

    @staticmethod
    def spent_today(instance: dg.DagsterInstance) -> int:
        """Characters the stem assets recorded as sent since 00:00 UTC."""
        midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        total = 0
        for key in STEM_ASSET_KEYS:
            cursor = None
            while True:
                result = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), after_timestamp=midnight), limit=1000, cursor=cursor
                )
                for record in result.records:
                    mat = record.asset_materialization
                    value = mat.metadata.get("chars_sent") if mat else None
                    total += int(value.value) if value is not None else 0
                if not result.has_more:
                    break
                cursor = result.cursor
        return total


def spend_guard_from_env(env: Mapping[str, str] | None = None) -> SpendGuardResource:
    env = os.environ if env is None else env

    def _int(name: str, default: int) -> int:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise ValueError(f"{name} must be a whole number of characters, got {raw!r}") from None
        if value < 0:
            raise ValueError(f"{name} must be >= 0 (0 = unlimited), got {value}")
        return value

    return SpendGuardResource(
        max_chars_per_run=_int(ENV_PER_RUN, 0),
        max_chars_per_automated_run=_int(ENV_PER_AUTOMATED_RUN, DEFAULT_PER_AUTOMATED_RUN),
        max_chars_per_day=_int(ENV_PER_DAY, DEFAULT_PER_DAY),
    )
