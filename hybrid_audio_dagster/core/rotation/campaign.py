"""The campaign's rotation: the rotation store over the current dataset snapshots and
templates, and the settings read from the environment when used.

State lives under ``<root>/data/rotation/``: ``state.json`` (+ ``.lock``, ``.members/``),
the :class:`~hybrid_audio_dagster.core.rotation.store.RotationStore` built from the
current snapshots (name and developer slugs) and the template keys (its scripts: every
template and variant, or those ``HYBRID_AUDIO_ROTATION_TEMPLATES`` picks, e.g.
``followup-en,followup-en--soft_warm`` for an A/B test); the audit trail is
``<root>/logs/rotation_audit.jsonl``; the retry ledger is ``retry_ledger.json``
(:mod:`hybrid_audio_dagster.core.rotation.retry_ledger`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid_audio_dagster.core.datasets.snapshot import read_snapshot
from hybrid_audio_dagster.core.datasets.suppression import read_suppression
from hybrid_audio_dagster.core.layout import ProjectDirs
from hybrid_audio_dagster.core.rotation.batch import Assignment
from hybrid_audio_dagster.core.rotation.errors import DatasetError
from hybrid_audio_dagster.core.rotation.store import RotationStore
from hybrid_audio_dagster.core.template_variants import select_keys
from hybrid_audio_dagster.core.templates import Template, load_templates

DEFAULT_SEED = "hybrid-audio"
SEED_ENV = "HYBRID_AUDIO_ROTATION_SEED"
TEMPLATES_ENV = "HYBRID_AUDIO_ROTATION_TEMPLATES"


def rotation_dir(paths: ProjectDirs) -> Path:
    """``<root>/data/rotation``: the rotation state and the retry ledger."""
    return paths.data / "rotation"


def rotation_seed(env: Mapping[str, str] | None = None) -> str:
    """The configured seed: ``HYBRID_AUDIO_ROTATION_SEED`` or :data:`DEFAULT_SEED`.

    Read when used (not at import), so the schedule, the asset and the CLI agree. A new
    seed applies from the next cycle (or at once after ``RotationStore.reset``).
    """
    env = os.environ if env is None else env
    return env.get(SEED_ENV) or DEFAULT_SEED


def rotation_templates(env: Mapping[str, str] | None = None) -> list[str]:
    """The configured template selection: ``HYBRID_AUDIO_ROTATION_TEMPLATES``, comma- or
    space-separated; empty means every template and variant.

    An entry is a template key or ``<id>*``: ``followup-en,followup-en--soft_warm`` makes the
    scripts stream an A/B test of the template against that variant (the two strictly
    alternate, pair after pair); ``followup-en*`` takes the template and every variant of it.
    Read when used, like the seed; a change applies from the next scripts cycle.
    """
    env = os.environ if env is None else env
    return [p for p in (env.get(TEMPLATES_ENV) or "").replace(",", " ").split() if p]


@dataclass(frozen=True)
class Rotation:
    """The rotation store with the current datasets it was opened with (display text too)."""

    store: RotationStore
    names: dict[str, str]  # slug -> display
    developers: dict[str, str]
    templates: dict[str, Template]  # every template and variant (the scripts are some of them)
    scripts: tuple[str, ...] = ()  # the template keys the scripts stream draws from
    selection: tuple[str, ...] = ()  # HYBRID_AUDIO_ROTATION_TEMPLATES as read ((): all)
    unmatched: tuple[str, ...] = ()  # entries of the selection that match no template now

    def describe(self, a: Assignment) -> dict[str, Any]:
        """An assignment with display names (JSON-safe)."""
        return {
            "name": a.name,
            "name_display": self.names.get(a.name, a.name),
            "developer": a.developer,
            "developer_display": self.developers.get(a.developer, a.developer),
            "template": a.script,
            "cycle": a.cycle,
            "position": a.position,
        }

    def preview(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` assignments (script per pair, as the schedule draws them); no write."""
        return [self.describe(a) for a in self.store.preview(n, script_mode="pair")]


def open_rotation(paths: ProjectDirs, *, seed: str | None = None, templates: list[str] | None = None, fsync: bool = True) -> Rotation:
    """The rotation store over the current snapshots and templates (``templates``: the
    selection of :func:`rotation_templates`, read from the environment when None).

    Raises ``FileNotFoundError`` when a dataset snapshot does not exist yet (materialize
    the dataset assets first) and :class:`~..core.rotation.DatasetError` when a dataset or
    the templates are empty, or when the selection matches none of the templates. Entries
    of the selection that match nothing (a variant removed since) are left out and listed
    in :attr:`Rotation.unmatched`: a removed variant leaves the stream like a removed
    template.
    """
    # the suppression list as it is now, not as the last batch saw it: an opt-out never gets a turn
    suppressed = read_suppression(paths)
    names = {k: v for k, v in read_snapshot(paths, "names").items() if not suppressed.covers(v)}
    developers = read_snapshot(paths, "developers")
    loaded = load_templates(paths.templates)
    selection = rotation_templates() if templates is None else list(templates)
    scripts, unmatched = select_keys(loaded, selection) if selection else (list(loaded), [])
    if not scripts:
        raise DatasetError(f"{TEMPLATES_ENV}={','.join(selection)!r} matches no template or variant (known: {', '.join(loaded)})")
    store = RotationStore(
        rotation_dir(paths) / "state.json",
        names=names,
        developers=developers,
        scripts=scripts,
        seed=rotation_seed() if seed is None else seed,
        audit_path=paths.logs / "rotation_audit.jsonl",
        fsync=fsync,
    )
    return Rotation(store, names, developers, loaded, tuple(scripts), tuple(selection), tuple(unmatched))


# --------------------------------------------------------------------------- retry ledger
