"""The rotation as Markdown tables for the UI: the next pairs, the retry ledger, the
per-variant counts."""

from __future__ import annotations

from typing import Any

from hybrid_audio_dagster.core.markdown import table_cell
from hybrid_audio_dagster.core.rotation.campaign import Rotation


def skipped_in_cycle(audit: list[dict[str, Any]], cycle: int) -> int:
    """Positions skipped (keys removed from a dataset) by the advances ending in ``cycle``."""
    total = 0
    for rec in audit:
        detail = rec.get("detail") or {}
        if rec.get("event") == "advance" and rec.get("rotation") == "pairs" and detail.get("cycle_after") == cycle:
            total += int(detail.get("skipped") or 0)
    return total


def preview_table(rows: list[dict[str, Any]]) -> str:
    body = "\n".join(
        f"| {i + 1} | {r['cycle']}:{r['position']} | {table_cell(r['name_display'])} (`{r['name']}`) | "
        f"{table_cell(r['developer_display'])} (`{r['developer']}`) | `{r['template']}` |"
        for i, r in enumerate(rows)
    )
    return "| # | cycle:pos | name | developer | template |\n|---|---|---|---|---|\n" + body


def ledger_table(ledger: dict[str, Any], limit: int = 50) -> str:
    rows = (
        [
            f"| pending | `{p['name']}` | `{p['developer']}` | `{p['template']}` | {p.get('attempts', 0)} | "
            f"{p.get('deferrals', 0)} | {table_cell(p.get('reason', ''))} |"
            for p in ledger["pending"]
        ]
        + [
            f"| outstanding | {len(o['names'])} name(s) | `{o['developer']}` | `{o['template']}` | {o['attempt']} | - | "
            f"`{table_cell(o['run_key'])}` |"
            for o in ledger["outstanding"]
        ]
        + [
            f"| abandoned | `{a['name']}` | `{a['developer']}` | `{a['template']}` | {a.get('attempts', 0)} | "
            f"{a.get('deferrals', 0)} | {table_cell(a.get('reason', ''))} |"
            for a in ledger["abandoned"][-limit:]
        ]
    )
    if not rows:
        return "empty: nothing to retry"
    head = "| state | name | developer | template | attempts | deferrals | reason / run key |\n|---|---|---|---|---|---|---|\n"
    more = f"\n\n… and {len(rows) - limit} more" if len(rows) > limit else ""
    return head + "\n".join(rows[:limit]) + more


def variants_table(rotation: Rotation, counts, cycle: int) -> str:
    """One row per template key the stream draws from (or has handed out): the per-variant
    counts of the current cycle and of all time."""
    this = counts.in_cycle(cycle)
    keys = list(rotation.scripts) + sorted(k for k in counts.total if k not in rotation.scripts)
    body = "\n".join(
        f"| `{k}` | {rotation.templates[k].variant_name or '(template)' if k in rotation.templates else 'removed'} | "
        f"{'yes' if k in rotation.scripts else 'no'} | {this.get(k, 0)} | {counts.total.get(k, 0)} |"
        for k in keys
    )
    return "| template | variant | in the stream | this cycle | total |\n|---|---|---|---|---|\n" + body
