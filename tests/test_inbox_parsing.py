"""Tests of uploaded-file parsing and reports (hybrid_audio_dagster.core.inbox)."""

from __future__ import annotations

import csv
import io
import json
import random
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_audio_dagster.core.inbox import (
    PROBLEM_CODES,
    InboxFileError,
    ParsedFile,
    Report,
    content_sha256,
    decode_text,
    detect_role,
    ingest,
    parse_file,
    write_report,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def _err(data: bytes, filename: str = "names.csv", **kw) -> InboxFileError:
    with pytest.raises(InboxFileError) as exc:
        parse_file(data, filename=filename, **kw)
    assert exc.value.code in PROBLEM_CODES
    return exc.value


def _displays(data: bytes, filename: str = "names.csv", **kw) -> list[tuple[int, str]]:
    result = parse_file(data, filename=filename, **kw).normalize()
    return [(i.row, i.display) for i in result.items]


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
    assert _err(b"name\nJohn\n", filename="upload.csv").code == "unknown_role"
    assert _err(b"name\nJohn\n", role="people").code == "unknown_role"


def test_unsupported_extension() -> None:
    err = _err(b"PK\x03\x04rest", filename="names.xlsx")
    assert err.code == "unsupported_format" and "CSV UTF-8" in err.message


# ------------------------------------------------------------------------------- CSV


def test_csv_basic_with_row_numbers() -> None:
    parsed = parse_file(b"name\nJohn\n\nMaria\r\nJos\xc3\xa9\n", filename="names.csv")
    assert parsed.format == "csv" and parsed.encoding == "utf-8" and parsed.column == "name"
    assert list(zip(parsed.rows, parsed.values)) == [(2, "John"), (4, "Maria"), (5, "José")]


@pytest.mark.parametrize("header", ["name", "NAME", "First Name", "first_name", "FirstName", "given-name"])
def test_csv_header_variants(header: str) -> None:
    data = f"{header},last_name\nJohn,Doe\n".encode()
    assert _displays(data) == [(2, "John")]


def test_csv_picks_column_by_name_among_many() -> None:
    data = b"id,email,First Name,last_name\n1,a@x.com,John,Doe\n2,b@x.com,Maria,Roe\n"
    assert _displays(data) == [(2, "John"), (3, "Maria")]


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
    err = _err(b"name,first_name\nJohn,John\n")
    assert err.code == "ambiguous_column" and "'name'" in err.message and "'first_name'" in err.message
    assert _err(b"Name,name\nJ,J\n").code == "ambiguous_column"


def test_csv_no_known_column() -> None:
    err = _err(b"email,phone\na@x.com,1\n")
    assert err.code == "no_column" and "first_name" in err.message and "'email'" in err.message


def test_single_column_csv_needs_known_header() -> None:
    assert _displays(b"first_name\nJohn\n") == [(2, "John")]
    err = _err(b"John\nMaria\n")
    assert err.code == "no_column" and "single-column" in err.message and "'John'" in err.message


def test_wrong_role_file_gets_a_hint() -> None:
    err = _err(b"developer\nWyndham\n", filename="names.csv")
    assert err.code == "no_column" and "developers file" in err.message


@pytest.mark.parametrize("data", [b"name\n", b"name\n\n,\n  \n", b"\n\n", b"\xef\xbb\xbf"])
def test_csv_without_rows(data: bytes) -> None:
    assert _err(data).code == "no_data"


def test_csv_malformed_quoting() -> None:
    err = _err(b'name\n"John"x\n')
    assert err.code == "malformed_csv"


def test_formula_and_path_cells_are_row_rejects() -> None:
    data = (
        b"name\nJohn\n=HYPERLINK(\"http://x\")\n+1\n-2\n@SUM(A1)\n\"\tTab\"\n"
        b"../../etc/passwd\n..\\..\\boot.ini\n/etc/shadow\nMaria\n"
    )
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
    err = _err("name\nJosé\nMaria\n".encode("utf-16-le"))
    assert err.code == "unsupported_encoding" and "byte-order mark" in err.message


def test_utf16_bom_with_invalid_content_is_refused() -> None:
    assert _err(b"\xff\xfen\x00a\x00\x00\xd8").code == "unsupported_encoding"  # lone surrogate


def test_utf32_is_refused() -> None:
    assert _err("name\nJohn\n".encode("utf-32")).code == "unsupported_encoding"


def test_cp1252_is_refused_with_a_clear_message() -> None:
    err = _err("name\nJosé\nZoë\nO’Brien\n".encode("cp1252"))
    assert err.code == "not_utf8"
    assert "not UTF-8" in err.message and "Windows-1252" in err.message and "re-save" in err.message
    assert "line 2" in err.message and "0xE9" in err.message


def test_latin1_only_high_bytes_is_refused() -> None:
    err = _err("name\nJosé\nChloé\n".encode("latin-1"))
    assert err.code == "not_utf8" and "Latin-1" in err.message


def test_cyrillic_legacy_encoding_is_named() -> None:
    err = _err("name\nМария\nИван\nОльга\n".encode("cp1251"))
    assert err.code == "not_utf8" and "Windows-1251" in err.message


def test_mixed_encodings_are_refused() -> None:
    data = "name\nJosé\n".encode() + "Zoë\nChloé\n".encode("cp1252") + "Siobhán\n".encode()
    err = _err(data)
    assert err.code == "mixed_encoding"
    assert "2, 5" in err.message and "3, 4" in err.message


def test_mixed_encodings_within_one_line_are_refused() -> None:
    data = b"name\n" + "José ".encode() + "Zoë".encode("cp1252") + b"\n"
    assert _err(data).code == "mixed_encoding"


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
    assert _err(data).code == "binary"


def test_a_stray_control_char_is_a_row_reject_not_a_binary_file() -> None:
    result = parse_file(b"name\nJo\x1bhn\nMaria\nDavid\nSarah\nLinda\n" * 5, filename="names.csv").normalize()
    assert "control_char" in {r.reason for r in result.rejects}


def test_decode_text_direct() -> None:
    assert decode_text(b"abc") == ("abc", "utf-8")
    assert decode_text(b"\xef\xbb\xbfabc") == ("abc", "utf-8-sig")


# --------------------------------------------------------------------------- size/limits


def test_empty_file_is_refused() -> None:
    err = _err(b"")
    assert err.code == "empty_file" and err.size == 0 and err.sha256 == content_sha256(b"")


def test_too_large_bytes_and_path(tmp_path: Path) -> None:
    data = b"name\n" + b"John\n" * 300
    err = _err(data, max_bytes=1000)
    assert err.code == "too_large" and err.size == len(data)
    path = tmp_path / "names.csv"
    path.write_bytes(data)
    with pytest.raises(InboxFileError) as exc:
        parse_file(path, max_bytes=1000)
    assert exc.value.code == "too_large"
    assert exc.value.sha256 == content_sha256(data) and exc.value.size == len(data)  # hash of the whole file


def test_default_size_limit_is_5_mib(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    with path.open("wb") as fh:
        fh.truncate(5 * 1024 * 1024 + 1)  # sparse: cheap to create
    with pytest.raises(InboxFileError) as exc:
        parse_file(path)
    assert exc.value.code == "too_large" and "5242880" in exc.value.message


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("names.csv", b"name\n" + b"John\n" * 11),
        ("names.txt", b"John\n" * 11),
        ("names.json", json.dumps(["John"] * 11).encode()),
    ],
)
def test_too_many_rows(filename: str, data: bytes) -> None:
    assert _err(data, filename=filename, max_rows=10).code == "too_many_rows"
    ok = data.replace(b"John\n", b"", 1) if not filename.endswith("json") else json.dumps(["John"] * 10).encode()
    parse_file(ok, filename=filename, max_rows=10)


# ------------------------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    "doc",
    [
        ["John", "Zoë"],
        [{"name": "John"}, {"name": "Zoë", "age": 3}],
        [{"First_Name": "John"}, {"first_name": "Zoë"}],
        {"items": ["John", "Zoë"]},
        {"names": [{"given_name": "John"}, {"given_name": "Zoë"}]},
    ],
)
def test_json_shapes(doc: object) -> None:
    data = json.dumps(doc, ensure_ascii=False).encode()
    assert _displays(data, filename="names.json") == [(1, "John"), (2, "Zoë")]


def test_json_bad_items_are_row_rejects() -> None:
    data = json.dumps(["John", 5, None, {"name": "x"}, "=1+1", "../x"]).encode()
    result = parse_file(data, filename="names.json").normalize()
    assert [i.display for i in result.items] == ["John"]
    assert {r.row: r.reason for r in result.rejects} == {
        2: "not_text",
        3: "empty",
        4: "not_text",
        5: "formula_injection",
        6: "path_like",
    }


def test_json_objects_mode_rejects() -> None:
    data = json.dumps([{"name": "John"}, "Maria", {"email": "x"}, {"name": 7}]).encode()
    result = parse_file(data, filename="names.json").normalize()
    assert [i.display for i in result.items] == ["John"]
    assert {r.row: r.reason for r in result.rejects} == {2: "wrong_type", 3: "missing_field", 4: "not_text"}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"[", "malformed_json"),
        (b'["John",]', "malformed_json"),
        (b'["John", NaN]', "malformed_json"),
        (b"[" * 50_000 + b"]" * 50_000, "malformed_json"),
        (b'"John"', "unsupported_json"),
        (b'{"people": ["John"]}', "unsupported_json"),
        (b'{"items": "John"}', "unsupported_json"),
        (b"[]", "no_data"),
        (b'[{"email": "x"}]', "no_column"),
        (b'[{"name": "J", "first_name": "J"}]', "ambiguous_column"),
        (b'[{"name": "J"}, {"given_name": "K"}]', "ambiguous_column"),
    ],
)
def test_json_file_errors(data: bytes, code: str) -> None:
    assert _err(data, filename="names.json").code == code


# -------------------------------------------------------------------------------- TXT


def test_txt_one_per_line_blank_lines_skipped() -> None:
    parsed = parse_file(b"John\n\n  \nMary Ann\r\nZo\xc3\xab\rSiobh\xc3\xa1n", filename="names.txt")
    assert parsed.format == "txt"
    assert list(zip(parsed.rows, parsed.values)) == [(1, "John"), (4, "Mary Ann"), (5, "Zoë"), (6, "Siobhán")]


def test_txt_header_line_is_skipped_and_reported() -> None:
    parsed = parse_file(b"Name\nJohn\n", filename="names.txt")
    assert parsed.values == ("John",)
    assert [(r.row, r.reason) for r in parsed.rejects] == [(1, "header_line")]


def test_txt_does_not_split_on_exotic_line_breaks() -> None:
    # str.splitlines would split on U+2028 and hide it; it must be a row reject instead
    result = parse_file("John\u2028Maria\nDavid\n".encode(), filename="names.txt").normalize()
    assert [i.display for i in result.items] == ["David"]
    assert result.rejects[0].row == 1 and result.rejects[0].reason == "control_char"


def test_txt_only_blank_lines() -> None:
    assert _err(b"\n \n\t\n", filename="names.txt").code == "no_data"


# --------------------------------------------------------------------- paths and reports


def test_parse_from_path_uses_basename(tmp_path: Path) -> None:
    path = tmp_path / "developers.csv"
    path.write_bytes(b"brand\nWestgate\n")
    parsed = parse_file(path)
    assert isinstance(parsed, ParsedFile)
    assert parsed.filename == "developers.csv" and parsed.role == "developers"
    assert parsed.sha256 == content_sha256(b"brand\nWestgate\n") and parsed.size == 15


def test_unreadable_path(tmp_path: Path) -> None:
    (tmp_path / "names.csv").mkdir()
    with pytest.raises(InboxFileError) as exc:
        parse_file(tmp_path / "names.csv")
    assert exc.value.code == "unreadable"


def test_bytes_need_a_filename() -> None:
    with pytest.raises(TypeError):
        parse_file(b"name\nJohn\n")


def test_report_for_refused_file(tmp_path: Path) -> None:
    data = "name\nJosé\n".encode("cp1252")
    ing = ingest(data, filename="incoming/names.csv")
    assert ing.parsed is None and ing.result is None
    rep = ing.report
    assert rep.status == "rejected" and not rep.ok
    d = json.loads(rep.to_json())
    assert d["filename"] == "names.csv" and d["sha256"] == content_sha256(data)
    assert d["size"] == len(data) and d["role"] == "names"
    assert d["problem"]["code"] == "not_utf8" and "Windows-1252" in d["problem"]["message"]
    assert d["rejects"] == []
    out = tmp_path / "reports" / "names.csv.report.json"
    write_report(rep, out)
    assert json.loads(out.read_text()) == d


def test_report_with_row_rejects() -> None:
    data = b"name\nJohn\njohn\n=1+1\n\xe2\x80\xaeevil\n"
    rep = ingest(data, filename="names.csv").report
    assert rep.status == "accepted_with_rejects" and rep.accepted == 1 and rep.rows == 4
    d = rep.to_dict()
    assert d["problem"] is None and d["fingerprint"]
    assert [(r["row"], r["reason"]) for r in d["rejects"]] == [
        (3, "duplicate"),
        (4, "formula_injection"),
        (5, "control_char"),
    ]
    assert d["rejects"][0]["message"].startswith("duplicate of row 2")
    assert "\u202e" not in rep.to_json()  # the bidi override is escaped, never embedded
    assert d["rejects"][2]["value"] == "\\u202eevil"


def test_report_all_rows_rejected() -> None:
    rep = ingest(b"name\n=1\n123\n", filename="names.csv").report
    assert rep.status == "rejected" and rep.problem_code == "no_valid_rows" and len(rep.rejects) == 2


def test_report_accepted() -> None:
    ing = ingest(b"name\nJohn\n", filename="names.csv")
    assert ing.report.status == "accepted" and ing.report.ok
    assert ing.report.fingerprint == ing.result.fingerprint
    assert Report.from_result(ing.parsed, ing.result) == ing.report


def test_error_str_names_file_and_problem() -> None:
    err = _err(b"", filename="names.csv")
    assert str(err) == "names.csv: file is empty (0 bytes)"
    assert err.problem_code == "empty_file"


# ----------------------------------------------------------------------------- samples


@pytest.mark.parametrize(("name", "count"), [("names.csv", 40), ("developers.csv", 10)])
def test_sample_data_passes_validation(name: str, count: int) -> None:
    ing = ingest(DATA / name)
    assert ing.report.status == "accepted", ing.report.to_json()
    assert ing.report.accepted == count
    for item in ing.result.items:
        assert unicodedata.is_normalized("NFC", item.display)


# -------------------------------------------------------------------------- properties

_FILENAMES = st.sampled_from(["names.csv", "developers.tsv", "names.json", "brands.txt"])


_TEXTISH = st.lists(
    st.sampled_from([b"a", b"Z", b" ", b"\n", b"\r", b",", b'"', b"\xc3", b"\xa9", b"\xe9", b"\x80", b"\xed", b"\xf0", b"\x9f"]),
    max_size=200,
).map(b"".join)


@given(st.one_of(st.binary(max_size=400), _TEXTISH), _FILENAMES)
@settings(max_examples=300, deadline=None)
def test_ingest_never_raises_on_arbitrary_bytes(data: bytes, filename: str) -> None:
    ing = ingest(data, filename=filename)
    json.loads(ing.report.to_json())
    assert ing.report.sha256 == content_sha256(data) and ing.report.size == len(data)
    if ing.report.problem_code is not None:
        assert ing.report.problem_code in PROBLEM_CODES


_CELL = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff"),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip() != "")


@given(st.lists(_CELL, min_size=1, max_size=20), st.sampled_from([",", ";", "\t"]))
@settings(max_examples=150, deadline=None)
def test_csv_round_trip_of_arbitrary_cells(cells: list[str], delim: str) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delim)
    writer.writerow(["id", "name"])
    writer.writerows([i, c] for i, c in enumerate(cells))
    parsed = parse_file(buf.getvalue().encode(), filename="names.csv")
    assert parsed.delimiter == delim
    assert parsed.values == tuple(cells)
    assert parsed.rows == tuple(range(2, len(cells) + 2))
