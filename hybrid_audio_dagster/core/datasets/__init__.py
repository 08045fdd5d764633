r"""Normalisation, validation and slugs for the two input datasets (pure Python, no Dagster).

A dataset is a list of *names* (first names of people) or *developers* (hotel/timeshare
brands). :func:`normalize_items` turns raw strings into :class:`DatasetItem` (stable slug
``key``, cleaned ``display`` text that will be spoken, source ``row``) and :class:`Reject`
(row, safe preview of the value, reason code and message).

Rules (one reason is reported per value: the first failing check, roughly in this order):

* ``not_text`` / ``empty``: the value is not a string, or nothing is left after trimming.
* ``formula_injection``: the raw cell starts with a tab or CR, or the trimmed text starts
  with ``= + - @`` (or their full-width forms). Such cells execute in spreadsheets when the
  data is exported again (CSV injection).
* ``control_char``: C0/C1 controls other than tab/CR/LF (those count as whitespace inside
  a value), format characters (zero-width space, bidi overrides/isolates, soft hyphen,
  BOM, ...), line/paragraph separators, invisible fillers (Hangul filler, combining
  grapheme joiner, variation selectors). Exception: ZERO WIDTH (NON-)JOINER between two
  non-Latin letters, which Persian and Indic names need; it is ignored for de-duplication.
* ``invalid_char``: lone surrogates, private-use and unassigned code points, and any
  character outside the allowed set (letters, combining marks, ASCII space, decimal digits
  and a short punctuation list per kind -- see :data:`ALLOWED_PUNCTUATION`). Emoji, symbols
  such as ``®`` (TTS reads them aloud) and stacks of more than 3 combining marks (zalgo
  text) are rejected.
* ``too_long``: more than 40 (names) / 60 (developers) code points after cleaning.
* ``path_like``: contains ``/``, ``\`` or ``..`` (also after NFKC, so ``／`` and ``…`` count).
* ``markup``: contains ``< > { } [ ]`` (after NFKC): they break the template renderer,
  SSML, and bracket tags some TTS engines interpret.
* ``digits_only`` / ``no_letters``: nothing to speak.
* ``digits_in_name``: names may not contain digits (developers may: "1 Hotels").
* ``bad_start``: must start with a letter or digit (catches stray quotes, hyphens, marks).
* ``mixed_script``: Latin, Cyrillic and Greek letters mixed in one value (homoglyph
  spoofing such as Cyrillic "а" in "Mаria").
* ``duplicate``: equal to an earlier row ignoring case, accents, apostrophe/hyphen style
  and compatibility forms ("ZOE" = "Zoë" = "Zoe", "O'Brien" = "O’Brien"). The first
  occurrence wins.

Cleaning: Unicode NFC; full-width ASCII (Ｊｏｈｎ) to ASCII; whitespace (any Unicode
space, tab, CR, LF) collapsed to one ASCII space and trimmed. Case is kept as typed
("McDonald", "DeShawn").

``|`` decision: it is harmless for TTS (read as a pause or skipped) and means nothing in
SSML, so it is *accepted and kept in the display text* (mid-value only: a leading ``|`` is
``bad_start``); renderers must treat the display as literal text. Slugs never contain it:
like every other non-alphanumeric character it becomes ``-`` ("John|Doe" -> "john-doe").

Slugs (``DatasetItem.key``) match ``^[a-z0-9][a-z0-9-]*$``, are at most 48 characters, and
depend only on the de-duplication class of the value (so "Zoë" and "ZOE" get the same slug
whichever of them came first), except for collisions, which are resolved independently of
row order: see :func:`assign_keys`.

The package holds :mod:`.constants` (the kinds, the limits and the character sets the rules
use), :mod:`.items` (:class:`DatasetItem`, :class:`Reject`, :class:`DatasetResult`,
:func:`dataset_fingerprint`), :mod:`.slugs` (:func:`fold`, :func:`slugify`,
:func:`assign_keys`), :mod:`.validation` (:class:`InvalidValueError`, :func:`clean_value`,
:func:`preview`) and :mod:`.normalize` (:func:`normalize_items`). Every name other code
imports is re-exported here.
"""
