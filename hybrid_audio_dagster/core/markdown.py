"""Markdown for Dagster's metadata tables (the UI renders them)."""

from __future__ import annotations


def table_cell(text: object) -> str:
    """``text`` safe inside one table cell: a ``|`` would end the cell, a newline the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")
