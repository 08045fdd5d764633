"""Where a Hybrid Audio installation keeps its files, as the core sees it.

The core takes any object with these folders (the Dagster resource ``ProjectPaths`` is
one), so it never needs Dagster to know where to read and write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class ProjectDirs(Protocol):
    """The folders of one installation; every path the code writes is below one of them."""

    @property
    def templates(self) -> Path: ...

    @property
    def data(self) -> Path: ...

    @property
    def datasets(self) -> Path: ...

    @property
    def dataset_store(self) -> Path: ...

    @property
    def inbox(self) -> Path: ...

    @property
    def rejected(self) -> Path: ...

    @property
    def stems(self) -> Path: ...

    @property
    def output(self) -> Path: ...

    @property
    def logs(self) -> Path: ...
