"""Uploaded-file parsing and reports (hybrid_audio_dagster.core.inbox): size and row limits,
JSON, TXT, paths, reports, the sample data, and properties over arbitrary bytes."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_audio_dagster.core.inbox.errors import PROBLEM_CODES, InboxFileError
from hybrid_audio_dagster.core.inbox.formats import MAX_JSON_DEPTH, json_depth
from hybrid_audio_dagster.core.inbox.parse import content_sha256, ingest, parse_file
from hybrid_audio_dagster.core.inbox.report import ParsedFile, Report, write_report
from tests.support.inbox import DATA, displays, refusal

# --------------------------------------------------------------------------- size/limits


def test_empty_file_is_refused() -> None:
    err = refusal(b"")
    assert err.code == "empty_file" and err.size == 0 and err.sha256 == content_sha256(b"")


def test_too_large_bytes_and_path(tmp_path: Path) -> None:
    data = b"name\n" + b"John\n" * 300
    err = refusal(data, max_bytes=1000)
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
    assert refusal(data, filename=filename, max_rows=10).code == "too_many_rows"
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
    assert displays(data, filename="names.json") == [(1, "John"), (2, "Zoë")]


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
    assert refusal(data, filename="names.json").code == code


def test_json_depth_skips_brackets_inside_strings() -> None:
    assert json_depth('{"items": [{"name": "[[[{{{\\"]]]"}]}') == 3
    assert json_depth('"John"') == 0


def test_json_too_deep_is_refused_before_parsing() -> None:
    inner = MAX_JSON_DEPTH - 1  # the outer list is one level
    at_limit = '["John", ' + "[" * inner + "]" * inner + "]"
    assert displays(at_limit.encode(), filename="names.json") == [(1, "John")]  # the odd item is a row reject
    deeper = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    problem = refusal(deeper, filename="names.json")
    assert problem.code == "malformed_json"
    assert f"nested {MAX_JSON_DEPTH + 1} levels deep" in str(problem)


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
    assert refusal(b"\n \n\t\n", filename="names.txt").code == "no_data"


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
    err = refusal(b"", filename="names.csv")
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
