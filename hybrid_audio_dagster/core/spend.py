"""Spend guard: character budgets checked before any TTS call (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """Character limits; 0 means no limit.

    Attributes:
        per_run: any run.
        per_automated_run: a run launched by a schedule or a sensor.
        per_day_automated: what automated runs may bring the day's total (UTC) to.
    """

    per_run: int = 0
    per_automated_run: int = 0
    per_day_automated: int = 0


class BudgetExceeded(Exception):
    """A run would spend more characters than its budget allows; nothing was sent."""


def check_budget(estimate: int, budget: Budget, *, automated: bool, spent_today: int = 0, engine: str = "") -> None:
    """Raise :class:`BudgetExceeded` (naming the estimate and the limit) if ``estimate``
    characters may not be sent now."""
    on = f" on {engine}" if engine else ""
    if budget.per_run and estimate > budget.per_run:
        raise BudgetExceeded(
            f"this run would synthesize {estimate:,} characters{on}, above the per-run budget of {budget.per_run:,}; "
            "nothing was sent (raise HYBRID_AUDIO_MAX_CHARS_PER_RUN or the run config's max_chars to go ahead)"
        )
    if not automated:
        return
    if budget.per_automated_run and estimate > budget.per_automated_run:
        raise BudgetExceeded(
            f"this automated run would synthesize {estimate:,} characters{on}, above the automated-run budget of "
            f"{budget.per_automated_run:,}; nothing was sent (launch it by hand, or raise "
            "HYBRID_AUDIO_MAX_CHARS_PER_AUTOMATED_RUN)"
        )
    if budget.per_day_automated and spent_today + estimate > budget.per_day_automated:
        raise BudgetExceeded(
            f"this automated run would synthesize {estimate:,} characters{on}; with {spent_today:,} already sent today "
            f"that exceeds the daily budget of {budget.per_day_automated:,}; nothing was sent "
            "(launch it by hand, or raise HYBRID_AUDIO_MAX_CHARS_PER_DAY)"
        )
