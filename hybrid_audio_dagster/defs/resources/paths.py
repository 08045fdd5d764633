"""Where the project keeps its files. Every path the code writes is below one of these."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

PROJECT_ROOT = Path(__file__).resolve().parents[3]


class ProjectPaths(dg.ConfigurableResource):
    """Folders of one Hybrid Audio installation.

    Attributes:
        root: base folder for data, stems, outputs and logs.
        templates_dir: message templates (``*.json``); defaults to ``<root>/templates``.
        inbox_dir: where campaign managers drop dataset files; defaults to ``<root>/data/inbox``.
    """

    root: str = str(PROJECT_ROOT)
    templates_dir: str = ""
    inbox_dir: str = ""

    @property
    def base(self) -> Path:
        return Path(self.root)

    @property
    def templates(self) -> Path:
        return Path(self.templates_dir) if self.templates_dir else self.base / "templates"

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def datasets(self) -> Path:
        """Normalised dataset snapshots written by the dataset assets."""
        return self.data / "normalized"

    @property
    def dataset_store(self) -> Path:
        """Accepted uploads, versioned (the inbox sensor moves files here)."""
        return self.data / "store"

    @property
    def inbox(self) -> Path:
        return Path(self.inbox_dir) if self.inbox_dir else self.data / "inbox"

    @property
    def rejected(self) -> Path:
        return self.data / "rejected"

    @property
    def stems(self) -> Path:
        return self.base / "stems"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def logs(self) -> Path:
        return self.base / "logs"


def project_paths(env=None) -> ProjectPaths:
    """The installation's folders: ``HYBRID_AUDIO_ROOT`` (default: the project folder)."""
    env = os.environ if env is None else env
    return ProjectPaths(root=env.get("HYBRID_AUDIO_ROOT", str(PROJECT_ROOT)))
