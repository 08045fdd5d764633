"""Uploaded-file parsing (hybrid_audio_dagster.core.inbox): roles, CSV and encodings.
Limits, JSON, TXT, paths, reports and properties are ``test_inbox_formats.py``."""

from __future__ import annotations

import random

import pytest

from hybrid_audio_dagster.core.inbox.decode import decode_text
from hybrid_audio_dagster.core.inbox.errors import InboxFileError
from hybrid_audio_dagster.core.inbox.parse import detect_role, parse_file
from tests.support.inbox import displays, refusal

# ----------------------------------------------------------------------------- roles


@pytest.mark.parametrize(
    ("filename", "role"),
    [
        ("names.csv", "names"),
        ("Names_2024-06.CSV", "names"),
        ("first_names.txt", "names"),
        ("names.json", "names"),
        ("developers.csv", "developers"),
        ("developers-june.json", "developers"),
        ("brands.txt", "developers"),
        ("Resorts.tsv", "developers"),
        ("companies.csv", "developers"),
        ("uploads\\names.csv", "names"),
        ("a/b/brands.csv", "developers"),
        ("people.csv", None),
        ("names.xlsx", None),
        ("names", None),
        ("my_names.csv", None),
    ],
)
def test_detect_role(filename: str, role: str | None) -> None:
    assert detect_role(filename) == role


def test_explicit_role_overrides_filename() -> None:
    parsed = parse_file(b"developer\nWyndham\n", filename="names.csv", role="developers")
    assert parsed.role == "developers" and parsed.values == ("Wyndham",)
    assert parse_file(b"name\nJohn\n", filename="upload.csv", role="names").role == "names"
    assert refusal(b"name\nJohn\n", filename="upload.csv").code == "unknown_role"
    assert refusal(b"name\nJohn\n", role="people").code == "unknown_role"


def test_unsupported_extension() -> None:
    err = refusal(b"PK\x03\x04rest", filename="names.xlsx")
    assert err.code == "unsupported_format" and "CSV UTF-8" in err.message


# ------------------------------------------------------------------------------- CSV


def test_csv_basic_with_row_numbers() -> None:
    parsed = parse_file(b"name\nJohn\n\nMaria\r\nJos\xc3\xa9\n", filename="names.csv")
    assert parsed.format == "csv" and parsed.encoding == "utf-8" and parsed.column == "name"
    assert list(zip(parsed.rows, parsed.values)) == [(2, "John"), (4, "Maria"), (5, "José")]


@pytest.mark.parametrize("header", ["name", "NAME", "First Name", "first_name", "FirstName", "given-name"])
def test_csv_header_variants(header: str) -> None:
    data = f"{header},last_name\nJohn,Doe\n".encode()
    assert displays(data) == [(2, "John")]


def test_csv_picks_column_by_name_among_many() -> None:
    data = b"id,email,First Name,last_name\n1,a@x.com,John,Doe\n2,b@x.com,Maria,Roe\n"
    assert displays(data) == [(2, "John"), (3, "Maria")]


@pytest.mark.parametrize(("delim", "ext"), [(";", ".csv"), ("\t", ".csv"), ("\t", ".tsv"), (",", ".csv")])
def test_csv_delimiter_sniffing(delim: str, ext: str) -> None:
    data = f"id{delim}developer{delim}city\n1{delim}Westgate & Co.{delim}Orlando\n".encode()
    parsed = parse_file(data, filename=f"developers{ext}")
    assert parsed.delimiter == delim and parsed.values == ("Westgate & Co.",)


def test_csv_quoted_fields_and_multiline_cell() -> None:
    data = b'developer\n"Diamond Resorts, Inc."\n"Holiday Inn\nClub Vacations"\nWyndham\n'
    result = parse_file(data, filename="developers.csv").normalize()
    assert [(i.row, i.display) for i in result.items] == [
        (2, "Diamond Resorts, Inc."),
        (3, "Holiday Inn Club Vacations"),  # newline in a cell collapses to a space
        (4, "Wyndham"),
    ]


def test_csv_unquoted_delimiter_in_value_is_row_reject_not_truncation() -> None:
    parsed = parse_file(b"developer\nMarriott, Inc\nWyndham\nBluegreen,,\n", filename="developers.csv")
    assert parsed.values == ("Wyndham", "Bluegreen")  # trailing empty fields are harmless
    (reject,) = parsed.rejects
    assert reject.row == 2 and reject.reason == "extra_fields"


def test_csv_missing_field_is_row_reject() -> None:
    parsed = parse_file(b"id,name\n1,John\n2\n", filename="names.csv")
    assert parsed.values == ("John",)
    assert [(r.row, r.reason) for r in parsed.rejects] == [(3, "missing_field")]


def test_csv_ambiguous_columns() -> None:
    err = refusal(b"name,first_name\nJohn,John\n")
    assert err.code == "ambiguous_column" and "'name'" in err.message and "'first_name'" in err.message
    assert refusal(b"Name,name\nJ,J\n").code == "ambiguous_column"


def test_csv_no_known_column() -> None:
    err = refusal(b"email,phone\na@x.com,1\n")
    assert err.code == "no_column" and "first_name" in err.message and "'email'" in err.message


def test_single_column_csv_needs_known_header() -> None:
    assert displays(b"first_name\nJohn\n") == [(2, "John")]
    err = refusal(b"John\nMaria\n")
    assert err.code == "no_column" and "single-column" in err.message and "'John'" in err.message


def test_wrong_role_file_gets_a_hint() -> None:
    err = refusal(b"developer\nWyndham\n", filename="names.csv")
    assert err.code == "no_column" and "developers file" in err.message


@pytest.mark.parametrize("data", [b"name\n", b"name\n\n,\n  \n", b"\n\n", b"\xef\xbb\xbf"])
def test_csv_without_rows(data: bytes) -> None:
    assert refusal(data).code == "no_data"


def test_csv_malformed_quoting() -> None:
    err = refusal(b'name\n"John"x\n')
    assert err.code == "malformed_csv"


def test_formula_and_path_cells_are_row_rejects() -> None:
    data = b'name\nJohn\n=HYPERLINK("http://x")\n+1\n-2\n@SUM(A1)\n"\tTab"\n../../etc/passwd\n..\\..\\boot.ini\n/etc/shadow\nMaria\n'
    result = parse_file(data, filename="names.csv").normalize()
    assert [i.display for i in result.items] == ["John", "Maria"]
    reasons = {r.row: r.reason for r in result.rejects}
    assert reasons == {
        3: "formula_injection",
        4: "formula_injection",
        5: "formula_injection",
        6: "formula_injection",
        7: "formula_injection",
        8: "path_like",
        9: "path_like",
        10: "path_like",
    }


# ----------------------------------------------------------------------------- encodings


def test_utf8_bom_is_accepted_and_stripped() -> None:
    parsed = parse_file(b"\xef\xbb\xbfname\nZo\xc3\xab\n", filename="names.csv")
    assert parsed.encoding == "utf-8-sig" and parsed.column == "name" and parsed.values == ("Zoë",)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_accepted(codec: str) -> None:
    text = "name\r\nJosé\r\n李雷\r\n"
    data = text.encode(codec)
    if codec != "utf-16":
        data = "\ufeff".encode(codec) + data
    parsed = parse_file(data, filename="names.csv")
    assert parsed.encoding == "utf-16" and parsed.values == ("José", "李雷")


def test_utf16_without_bom_is_refused() -> None:
    err = refusal("name\nJosé\nMaria\n".encode("utf-16-le"))
    assert err.code == "unsupported_encoding" and "byte-order mark" in err.message


def test_utf16_bom_with_invalid_content_is_refused() -> None:
    assert refusal(b"\xff\xfen\x00a\x00\x00\xd8").code == "unsupported_encoding"  # lone surrogate


def test_utf32_is_refused() -> None:
    assert refusal("name\nJohn\n".encode("utf-32")).code == "unsupported_encoding"


def test_cp1252_is_refused_with_a_clear_message() -> None:
    err = refusal("name\nJosé\nZoë\nO’Brien\n".encode("cp1252"))
    assert err.code == "not_utf8"
    assert "not UTF-8" in err.message and "Windows-1252" in err.message and "re-save" in err.message
    assert "line 2" in err.message and "0xE9" in err.message


def test_latin1_only_high_bytes_is_refused() -> None:
    err = refusal("name\nJosé\nChloé\n".encode("latin-1"))
    assert err.code == "not_utf8" and "Latin-1" in err.message


def test_cyrillic_legacy_encoding_is_named() -> None:
    err = refusal("name\nМария\nИван\nОльга\n".encode("cp1251"))
    assert err.code == "not_utf8" and "Windows-1251" in err.message


def test_mixed_encodings_are_refused() -> None:
    data = "name\nJosé\n".encode() + "Zoë\nChloé\n".encode("cp1252") + "Siobhán\n".encode()
    err = refusal(data)
    assert err.code == "mixed_encoding"
    assert "2, 5" in err.message and "3, 4" in err.message


def test_mixed_encodings_within_one_line_are_refused() -> None:
    data = b"name\n" + "José ".encode() + "Zoë".encode("cp1252") + b"\n"
    assert refusal(data).code == "mixed_encoding"


def test_never_mojibake() -> None:
    # Legacy encodings are refused, never decoded by guessing.
    for codec in ("cp1252", "latin-1", "cp850", "mac_roman"):
        with pytest.raises(InboxFileError):
            parse_file("name\nJosé Zoë\n".encode(codec), filename="names.csv")


@pytest.mark.parametrize(
    "data",
    [
        random.Random(0).randbytes(4096),
        bytes(b for b in random.Random(1).randbytes(4096) if b),  # no NUL, still garbage
        b"name\nJo\x00hn\n",
        b"\x89PNG\r\n\x1a\n" + bytes(100),
        b"PK\x03\x04" + bytes(100),
        b"%PDF-1.7\n...",
        bytes(range(1, 32)) * 10,
    ],
)
def test_binary_garbage_is_refused(data: bytes) -> None:
    assert refusal(data).code == "binary"


def test_a_stray_control_char_is_a_row_reject_not_a_binary_file() -> None:
    result = parse_file(b"name\nJo\x1bhn\nMaria\nDavid\nSarah\nLinda\n" * 5, filename="names.csv").normalize()
    assert "control_char" in {r.reason for r in result.rejects}


def test_decode_text_direct() -> None:
    assert decode_text(b"abc") == ("abc", "utf-8")
    assert decode_text(b"\xef\xbb\xbfabc") == ("abc", "utf-8-sig")
