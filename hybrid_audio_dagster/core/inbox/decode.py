"""Decoding of uploaded bytes: :func:`decode_text` and the diagnosis of files it refuses.

Encoding policy: UTF-8 (with or without BOM) and UTF-16 with a BOM are decoded. Anything
else is refused with a message saying what it looks like (Windows-1252, Latin-1, UTF-16
without BOM, a mix of UTF-8 and another encoding, binary) -- never decoded by guessing,
so a name can never reach the TTS as mojibake.
"""

from __future__ import annotations

import re
import unicodedata

from hybrid_audio_dagster.core.inbox.errors import InboxFileError

_BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx/.docx workbook?); export it as 'CSV UTF-8'"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.xls?); export it as 'CSV UTF-8'"),
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "an executable"),
    (b"RIFF", "a RIFF file (WAV audio?)"),
)
# C0 controls that do not belong in a text file (tab, LF, VT, FF and CR are allowed).
_CTRL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
_CTRL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_CTRL_RATIO = 0.05  # above this share of control bytes the file is binary, not a few bad rows
_HIGH = re.compile(rb"[\x80-\xff]")
_UTF8_MB = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_TYPOGRAPHIC = frozenset("’‘“”–—…•€«»¡¿·°")
# charset_normalizer guesses we trust enough to name in a message (it is unreliable on
# short Latin text, which we recognise ourselves).
_TRUSTED_GUESSES = {
    "cp1250": "Windows-1250 (Central European)",
    "cp1251": "Windows-1251 (Cyrillic)",
    "koi8_r": "KOI8-R (Cyrillic)",
    "cp1253": "Windows-1253 (Greek)",
    "cp1254": "Windows-1254 (Turkish)",
    "cp1255": "Windows-1255 (Hebrew)",
    "cp1256": "Windows-1256 (Arabic)",
    "shift_jis": "Shift-JIS (Japanese)",
    "cp932": "Shift-JIS (Japanese)",
    "euc_jp": "EUC-JP (Japanese)",
    "gb2312": "GB2312 (Chinese)",
    "gbk": "GBK (Chinese)",
    "gb18030": "GB18030 (Chinese)",
    "big5": "Big5 (Chinese)",
    "euc_kr": "EUC-KR (Korean)",
    "cp949": "CP949 (Korean)",
    "mac_roman": "Mac Roman",
}
_RESAVE = "re-save it as UTF-8 (e.g. Excel: Save As > 'CSV UTF-8')"


# ------------------------------------------------------------------------------- decoding


def _is_utf16_without_bom(data: bytes) -> bool:
    half = len(data) // 2
    if half < 2:
        return False
    even, odd = data[0::2].count(0), data[1::2].count(0)
    return max(even, odd) / half > 0.3 and min(even, odd) / half < 0.05


def _looks_latin(text: str) -> bool:
    """Plausible Western text: accented letters sit inside otherwise-ASCII words."""
    high = [c for c in text if ord(c) > 0x7F]
    if not high:
        return True
    good = sum(1 for c in high if c.isalpha() or c in _TYPOGRAPHIC)
    if good / len(high) < 0.8:
        return False
    words = [w for w in re.findall(r"[^\W\d_]+", text) if not w.isascii()]
    if not words:
        return True
    return sum(1 for w in words if any(c.isascii() for c in w)) / len(words) >= 0.5


def _looks_cyrillic(text: str) -> bool:
    high = [c for c in text if ord(c) > 0x7F]
    cyr = sum(1 for c in high if unicodedata.name(c, "").startswith("CYRILLIC"))
    return bool(high) and cyr / len(high) >= 0.9


def _guess_legacy(data: bytes) -> str | None:
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = None
    if text is not None and _looks_latin(text):
        if re.search(rb"[\x80-\x9f]", data):  # smart quotes, dashes, euro: Windows-only bytes
            return "Windows-1252"
        return "Windows-1252 / ISO-8859-1 (Latin-1)"
    try:
        if _looks_cyrillic(data.decode("cp1251")):
            return "Windows-1251 (Cyrillic)"
    except UnicodeDecodeError:
        pass
    try:
        import charset_normalizer  # optional: only to name an exotic encoding

        best = charset_normalizer.from_bytes(data).best()
    except Exception:  # pragma: no cover - missing package or detector failure
        return None
    return _TRUSTED_GUESSES.get(best.encoding) if best is not None else None


def _line_list(lines: list[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:5])
    return shown + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")


def _diagnose_not_utf8(data: bytes) -> InboxFileError:
    """Explain why valid-looking text is not UTF-8: mixed encodings or a legacy one."""
    utf8_lines: list[int] = []
    bad_lines: list[int] = []
    first_bad: tuple[int, int] | None = None
    for n, line in enumerate(data.split(b"\n"), start=1):
        if not _HIGH.search(line):
            continue
        rest = _UTF8_MB.sub(b"", line)
        if len(rest) != len(line):
            utf8_lines.append(n)
        bad = _HIGH.search(rest)
        if bad:
            bad_lines.append(n)
            first_bad = first_bad or (n, rest[bad.start()])
    if first_bad is None:  # pragma: no cover - the regex mirrors the strict decoder
        return InboxFileError("not_utf8", f"file is not valid UTF-8; {_RESAVE}")
    line_no, byte = first_bad
    if utf8_lines:
        return InboxFileError(
            "mixed_encoding",
            f"file mixes encodings: line(s) {_line_list(utf8_lines)} contain UTF-8 but line(s) "
            f"{_line_list(bad_lines)} do not (first bad byte 0x{byte:02X} on line {line_no}); "
            f"{_RESAVE}",
        )
    guess = _guess_legacy(data)
    looks = f"it looks like {guess}" if guess else "its encoding is unknown (a legacy 8-bit code page?)"
    hint = ""
    if guess and guess.startswith("Windows-1252"):
        hint = f", which is {bytes([byte]).decode('cp1252', 'replace')!r} in Windows-1252"
    return InboxFileError(
        "not_utf8",
        f"file is not UTF-8; {looks}; {_RESAVE} (line {line_no}: byte 0x{byte:02X}{hint})",
    )


def _check_controls(count: int, total: int, what: str) -> None:
    if total and count / total > _CTRL_RATIO:
        raise InboxFileError("binary", f"file is not text: {count} of {total} {what} are control codes")


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode ``data`` as UTF-8 (BOM optional) or BOM-marked UTF-16; return (text, encoding).

    Raises :class:`InboxFileError` (``binary``, ``not_utf8``, ``mixed_encoding``,
    ``unsupported_encoding``) for anything else.
    """
    for magic, what in _BINARY_MAGIC:
        if data.startswith(magic):
            raise InboxFileError("binary", f"file is not text: it looks like {what}")
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise InboxFileError("unsupported_encoding", f"file is UTF-32, which is not supported; {_RESAVE}")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec = "utf-16-le" if data.startswith(b"\xff\xfe") else "utf-16-be"
        try:
            text = data[2:].decode(codec)
        except UnicodeDecodeError as exc:
            raise InboxFileError(
                "unsupported_encoding", f"file has a UTF-16 byte-order mark but is not valid UTF-16 ({exc.reason})"
            ) from None
        if "\x00" in text:
            raise InboxFileError("binary", "file is not text: it contains NUL characters")
        _check_controls(len(_CTRL_CHARS.findall(text)), len(text), "characters")
        return text, "utf-16"
    encoding = "utf-8"
    if data.startswith(b"\xef\xbb\xbf"):
        data, encoding = data[3:], "utf-8-sig"
    if b"\x00" in data:
        if _is_utf16_without_bom(data):
            raise InboxFileError("unsupported_encoding", f"file looks like UTF-16 without a byte-order mark; {_RESAVE}")
        raise InboxFileError("binary", "file is not text: it contains NUL bytes")
    _check_controls(len(_CTRL_BYTES.findall(data)), len(data), "bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _diagnose_not_utf8(data) from None
    return text, encoding
