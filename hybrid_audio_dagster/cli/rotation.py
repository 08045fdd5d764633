"""``rotation``: thin commands over the rotation's own assets and jobs (filled in last)."""

from __future__ import annotations

import typer

rotation_app = typer.Typer(help="The deterministic name × developer rotation.", no_args_is_help=True)
