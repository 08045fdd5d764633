"""What the uploaded-file parsing tests share: the sample data folder, the refusal a file
gets, and the names a file yields."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_audio_dagster.core.inbox.errors import PROBLEM_CODES, InboxFileError
from hybrid_audio_dagster.core.inbox.parse import parse_file

DATA = Path(__file__).resolve().parents[2] / "data"


def refusal(data: bytes, filename: str = "names.csv", **kw) -> InboxFileError:
    """The error parsing ``data`` raises; its code is one of the documented problem codes."""
    with pytest.raises(InboxFileError) as exc:
        parse_file(data, filename=filename, **kw)
    assert exc.value.code in PROBLEM_CODES
    return exc.value


def displays(data: bytes, filename: str = "names.csv", **kw) -> list[tuple[int, str]]:
    """(row, display name) of every accepted item."""
    result = parse_file(data, filename=filename, **kw).normalize()
    return [(i.row, i.display) for i in result.items]
