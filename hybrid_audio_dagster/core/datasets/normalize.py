"""Normalisation of a whole list of raw values into a :class:`~.items.DatasetResult`."""

from __future__ import annotations

from collections.abc import Iterable

from hybrid_audio_dagster.core.datasets.items import DatasetItem, DatasetResult, Reject
from hybrid_audio_dagster.core.datasets.slugs import assign_folded_keys, fold
from hybrid_audio_dagster.core.datasets.validation import check_value, preview, require_kind


def normalize_items(
    kind: str,
    raw_values: Iterable[object],
    *,
    source: str,
    rows: Iterable[int] | None = None,
    existing: Iterable[DatasetItem] = (),
    pronunciations: Iterable[object] | None = None,
) -> DatasetResult:
    """Validate, clean, de-duplicate and slug ``raw_values``.

    ``existing`` are the items of the previous version of the dataset: each keeps its key
    (slugs are partition keys, file names and rotation keys, so they must never move).

    ``rows`` gives the 1-based source row of each value (default: 1, 2, 3, ...). Non-string
    values are rejected (``not_text``; ``None`` is ``empty``) rather than raising, so parsed
    JSON can be passed as is.

    ``pronunciations`` (optional, one per value; ``None``/empty for none) are validated by
    :func:`.pronounce.spec.parse_pronunciation`: a bad one rejects its row
    (``bad_pronunciation``, ``bad_respelling``, ``bad_ipa``, ``pronunciation_too_long``).
    The items carry it; :func:`.pronounce.lexicon.says_for` turns it into ``say``.
    """
    from hybrid_audio_dagster.core.pronounce.spec import PronunciationError, parse_pronunciation

    require_kind(kind)
    values = list(raw_values)
    row_numbers = list(rows) if rows is not None else list(range(1, len(values) + 1))
    if len(row_numbers) != len(values):
        raise ValueError(f"{len(values)} values but {len(row_numbers)} row numbers")
    prons = list(pronunciations) if pronunciations is not None else [None] * len(values)
    if len(prons) != len(values):
        raise ValueError(f"{len(values)} values but {len(prons)} pronunciations")
    own: dict[int, str] = {}
    accepted: list[tuple[int, str]] = []
    folded: list[str] = []
    rejects: list[Reject] = []
    first_row: dict[str, tuple[int, str]] = {}
    for row, raw, raw_pron in zip(row_numbers, values, prons):
        display, problem = check_value(kind, raw)
        if problem:
            rejects.append(Reject(row, preview(raw), problem[0], problem[1]))
            continue
        try:
            pron = parse_pronunciation(raw_pron)
        except PronunciationError as exc:
            msg = f"pronunciation {preview(raw_pron, 40)!r}: {exc.message}"
            rejects.append(Reject(row, preview(raw), exc.code, msg))
            continue
        key = fold(display)
        if key in first_row:
            first, first_display = first_row[key]
            msg = f"duplicate of row {first} ({preview(first_display)!r})"
            rejects.append(Reject(row, preview(raw), "duplicate", msg, duplicate_of=first))
            continue
        first_row[key] = (row, display)
        if pron is not None:
            own[row] = pron.value
        accepted.append((row, display))
        folded.append(key)
    keep = {fold(i.display): i.key for i in existing}
    keys = assign_folded_keys([d for _, d in accepted], folded, keep)
    items = tuple(
        DatasetItem(key, display, row, own.get(row), ((display, own[row]),) if row in own else ())
        for key, (row, display) in zip(keys, accepted)
    )
    rejects.sort(key=lambda r: r.row)
    return DatasetResult(kind=kind, source=source, items=items, rejects=tuple(rejects))
