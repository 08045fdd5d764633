"""Parsing of uploaded dataset files (CSV, JSON, TXT) into raw values for :mod:`.datasets`.

Used by the inbox sensor and the CLI. File-level problems raise :class:`InboxFileError`
with a ``code`` naming the problem (see :data:`PROBLEM_CODES`); row-level problems become
:class:`~.datasets.Reject` entries. :func:`ingest` does parse + normalise + :class:`Report`
in one call and never raises for a bad file.

The package holds :mod:`.parse` (the entry points :func:`parse_file`, :func:`ingest`,
:func:`detect_role` and the limits), :mod:`.decode` (the encoding policy and
:func:`decode_text`), :mod:`.formats` (the CSV, JSON and TXT readers and column choice),
:mod:`.report` (:class:`ParsedFile`, :class:`Report`, :class:`Ingested`,
:func:`write_report`) and :mod:`.errors` (:class:`InboxFileError`, :data:`PROBLEM_CODES`).
Every name other code imports is re-exported here.
"""
