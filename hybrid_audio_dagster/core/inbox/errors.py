"""File-level problems of an upload: :class:`InboxFileError` and its :data:`PROBLEM_CODES`."""

from __future__ import annotations

from hybrid_audio_dagster.core.datasets.validation import preview

PROBLEM_CODES: dict[str, str] = {
    "unreadable": "the file could not be read",
    "empty_file": "the file has 0 bytes",
    "too_large": "the file is larger than the size limit",
    "too_many_rows": "the file has more rows than the row limit",
    "binary": "the file is not text (NUL/control bytes, or a known binary format)",
    "not_utf8": "the file is text in a legacy encoding (e.g. Windows-1252), not UTF-8",
    "mixed_encoding": "some lines are UTF-8 and others are in another encoding",
    "unsupported_encoding": "UTF-16 without BOM, UTF-32, or invalid UTF-16",
    "unknown_role": "the role (names/developers) is unknown or cannot be derived from the name",
    "unsupported_format": "the extension is not .csv, .tsv, .json or .txt",
    "malformed_csv": "the CSV cannot be parsed (bad quoting, huge field)",
    "malformed_json": "the JSON cannot be parsed",
    "unsupported_json": "valid JSON but not one of the accepted shapes",
    "no_column": "no column/key with an accepted name",
    "ambiguous_column": "more than one column/key with an accepted name",
    "no_data": "the file holds no values",
    "no_valid_rows": "every row was rejected",
}


class InboxFileError(Exception):
    """A whole file is refused. ``code`` is one of :data:`PROBLEM_CODES`.

    :func:`parse_file` fills ``filename``, ``sha256``, ``size`` and ``role`` (when known)
    before the error leaves it, so :meth:`Report.from_error` can describe the file.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        filename: str | None = None,
        sha256: str | None = None,
        size: int | None = None,
        role: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.filename = filename
        self.sha256 = sha256
        self.size = size
        self.role = role
        super().__init__(message)

    @property
    def problem_code(self) -> str:
        return self.code

    def __str__(self) -> str:
        return f"{preview(self.filename)}: {self.message}" if self.filename else self.message
