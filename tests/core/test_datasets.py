"""Tests of dataset normalisation, validation and slugs (hybrid_audio_dagster.core.datasets)."""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_audio_dagster.core.datasets.constants import SLUG_MAX_LEN
from hybrid_audio_dagster.core.datasets.items import DatasetItem, DatasetResult, dataset_fingerprint
from hybrid_audio_dagster.core.datasets.normalize import normalize_items
from hybrid_audio_dagster.core.datasets.slugs import assign_keys, fold, slugify
from hybrid_audio_dagster.core.datasets.validation import InvalidValueError, clean_value, preview

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def _one(kind: str, value: object) -> DatasetResult:
    return normalize_items(kind, [value], source="test")


# ------------------------------------------------------------------------------ accepted


@pytest.mark.parametrize(
    ("raw", "display", "key"),
    [
        ("O'Brien", "O'Brien", "obrien"),
        ("José", "José", "jose"),
        ("Zoë", "Zoë", "zoe"),
        ("Anne-Marie", "Anne-Marie", "anne-marie"),
        ("Nguyễn", "Nguyễn", "nguyen"),
        ("Saoirse", "Saoirse", "saoirse"),
        ("Mary Ann", "Mary Ann", "mary-ann"),
        ("  Mary \t\u00a0 Ann  ", "Mary Ann", "mary-ann"),  # trimmed, any whitespace collapsed
        ("Jose\u0301", "José", "jose"),  # decomposed input is NFC-composed
        ("Siobhán", "Siobhán", "siobhan"),
        ("Søren", "Søren", "soren"),
        ("Łukasz", "Łukasz", "lukasz"),
        ("Ægir", "Ægir", "aegir"),
        ("J.R.", "J.R.", "j-r"),
        ("Marcel·la", "Marcel·la", "marcel-la"),
        ("ʻIolani", "ʻIolani", "iolani"),  # Hawaiian okina is a letter
        ("D’Angelo", "D’Angelo", "dangelo"),
        ("Ｊｏｈｎ", "John", "john"),  # full-width Latin folded to ASCII
        ("John|Doe", "John|Doe", "john-doe"),  # '|' kept for display, never in the slug
    ],
)
def test_real_names_are_accepted(raw: str, display: str, key: str) -> None:
    result = _one("names", raw)
    assert result.rejects == ()
    assert result.items == (DatasetItem(key=key, display=display, row=1),)


@pytest.mark.parametrize("raw", ["李雷", "Мария", "محمد\u200cرضا", "अनुष्का", "さくら"])
def test_non_latin_names_get_hash_slug(raw: str) -> None:
    (item,) = _one("names", raw).items
    assert item.display == unicodedata.normalize("NFC", raw)
    assert re.fullmatch(r"u-[0-9a-f]{10}", item.key)
    assert _one("names", raw).items[0].key == item.key  # deterministic


def test_partly_latin_value_keeps_ascii_part_and_adds_hash() -> None:
    (item,) = _one("names", "李雷 Li").items
    assert re.fullmatch(r"li-[0-9a-f]{8}", item.key)
    assert item.key != _one("names", "Li").items[0].key


@pytest.mark.parametrize(
    "raw",
    [
        "Hilton Grand Vacations",
        "Marriott Vacation Club",
        "Wyndham",
        "Holiday Inn Club Vacations",
        "Diamond Resorts",
        "Westgate",
        "Bluegreen",
        "Club Wyndham",
        "Hyatt Vacation Club",
        "Sheraton Vacation Club",
        "1 Hotels",
        "Westgate & Co.",
        "Diamond Resorts (Hilton)",
    ],
)
def test_developers_are_accepted(raw: str) -> None:
    result = _one("developers", raw)
    assert result.rejects == ()
    assert result.items[0].display == raw
    assert SLUG_RE.match(result.items[0].key)


def test_ampersand_becomes_and_in_slug() -> None:
    assert _one("developers", "Westgate & Co.").items[0].key == "westgate-and-co"


# ------------------------------------------------------------------------------ rejected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   \t ", "empty"),
        (None, "empty"),
        (42, "not_text"),
        ("A" * 41, "too_long"),
        ('=HYPERLINK("x")', "formula_injection"),
        ("+1234", "formula_injection"),
        ("-John", "formula_injection"),
        ("@SUM(A1)", "formula_injection"),
        ("\tJohn", "formula_injection"),
        ("\rJohn", "formula_injection"),
        ("  =cmd", "formula_injection"),  # still a formula once trimmed
        ("＝cmd", "formula_injection"),  # full-width '='
        ("Jo\x00hn", "control_char"),
        ("Jo\x1bhn", "control_char"),
        ("Jo\u200bhn", "control_char"),  # zero-width space
        ("\u202eJohn", "control_char"),  # bidi override
        ("John\u2066x\u2069", "control_char"),  # bidi isolate
        ("Jo\u00adhn", "control_char"),  # soft hyphen
        ("\ufeffJohn", "control_char"),
        ("Jo\u200dhn", "control_char"),  # ZWJ between Latin letters has no purpose
        ("Jo\u2028hn", "control_char"),
        ("\u3164", "control_char"),  # Hangul filler (invisible "letter")
        ("John\ufe0f", "control_char"),  # variation selector
        ("Jo\ud800hn", "invalid_char"),  # lone surrogate
        ("Jo\ue000hn", "invalid_char"),  # private use
        ("John🙂", "invalid_char"),
        ("John®", "invalid_char"),
        ("Jo,hn", "invalid_char"),
        ("Z\u0301\u0300\u0302\u0303\u0304\u0306oe", "invalid_char"),  # zalgo
        ("123", "digits_only"),
        ("١٢٣", "digits_only"),
        ("...", "path_like"),
        ("'-'", "no_letters"),
        ("../../etc/passwd", "path_like"),
        ("C:\\Windows", "path_like"),
        ("a/b", "path_like"),
        ("Jo..hn", "path_like"),
        ("Jo…", "path_like"),  # ellipsis is '...' under NFKC
        ("<script>", "markup"),
        ("{name}", "markup"),
        ("John}", "markup"),
        ("[laughs] John", "markup"),
        ("John2", "digits_in_name"),
        ("'John", "bad_start"),
        ("|John", "bad_start"),
        ("Mаria", "mixed_script"),  # Cyrillic 'а'
        ("Αlex", "mixed_script"),  # Greek capital alpha
    ],
)
def test_bad_names_are_rejected(raw: object, reason: str) -> None:
    result = _one("names", raw)
    assert result.items == ()
    (reject,) = result.rejects
    assert reject.reason == reason, reject
    assert reject.row == 1 and reject.message


def test_length_limits_per_kind() -> None:
    assert _one("names", "A" * 40).items
    assert _one("developers", "A" * 60).items
    assert _one("developers", "A" * 61).rejects[0].reason == "too_long"
    assert _one("names", "A" * 100_000).rejects[0].reason == "too_long"


def test_digits_allowed_in_developers_but_not_digits_only() -> None:
    assert _one("developers", "21c Museum Hotels").items
    assert _one("developers", "2021").rejects[0].reason == "digits_only"


def test_zero_width_joiner_allowed_between_non_latin_letters_only() -> None:
    assert _one("names", "محمد\u200cرضا").items
    assert _one("names", "\u200cرضا").rejects[0].reason == "control_char"
    # it does not make an otherwise equal value distinct
    result = normalize_items("names", ["محمدرضا", "محمد\u200cرضا"], source="t")
    assert [r.reason for r in result.rejects] == ["duplicate"]


def test_reject_value_is_escaped_and_truncated() -> None:
    r = _one("names", "\u202eevil\x1b").rejects[0]
    assert r.value == "\\u202eevil\\x1b"
    long = _one("names", "x" * 500).rejects[0]
    assert len(long.value) < 120 and "500 chars" in long.value
    assert preview(None) == "None"


# ------------------------------------------------------------------------------- dedup


def test_duplicates_case_accent_apostrophe_width_insensitive_first_wins() -> None:
    raw = ["Zoë", "ZOE", "zoe", "O'Brien", "O’Brien", "Ｊｏｈｎ", "JOHN", "Straße", "STRASSE"]
    result = normalize_items("names", raw, source="t")
    assert [i.display for i in result.items] == ["Zoë", "O'Brien", "John", "Straße"]
    dups = {r.row: r for r in result.rejects}
    assert set(dups) == {2, 3, 5, 7, 9}
    assert all(r.reason == "duplicate" for r in dups.values())
    assert dups[2].duplicate_of == 1 and "duplicate of row 1" in dups[2].message
    assert dups[5].duplicate_of == 4
    assert dups[9].duplicate_of == 8


def test_spacing_variants_are_not_duplicates_but_get_distinct_slugs() -> None:
    result = normalize_items("names", ["Anne-Marie", "Anne Marie"], source="t")
    keys = {i.display: i.key for i in result.items}
    assert len(result.items) == 2
    # "anne marie" sorts before "anne-marie", so "Anne Marie" keeps the plain slug
    assert keys["Anne Marie"] == "anne-marie"
    assert re.fullmatch(r"anne-marie-[0-9a-f]{6}", keys["Anne-Marie"])
    reversed_ = normalize_items("names", ["Anne Marie", "Anne-Marie"], source="t")
    assert {i.display: i.key for i in reversed_.items} == keys


def test_rows_parameter_and_validation() -> None:
    result = normalize_items("names", ["John", "=x"], source="t", rows=[7, 9])
    assert result.items[0].row == 7 and result.rejects[0].row == 9
    with pytest.raises(ValueError, match="row numbers"):
        normalize_items("names", ["John"], source="t", rows=[1, 2])
    with pytest.raises(ValueError, match="unknown dataset kind"):
        normalize_items("people", ["John"], source="t")


def test_clean_value() -> None:
    assert clean_value("names", "  zoë ") == "zoë"
    with pytest.raises(InvalidValueError) as exc:
        clean_value("names", "=1+1")
    assert exc.value.code == "formula_injection"


# --------------------------------------------------------------------------------- slugs


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Straße", "strasse"),
        ("Ærøskøbing", "aeroskobing"),
        ("Łódź", "lodz"),
        ("Đorđe", "dorde"),
        ("Þór", "thor"),
        ("Œuvre", "oeuvre"),
        ("İlker", "ilker"),
        ("  --Hello,   World!--  ", "hello-world"),
        ("a|b", "a-b"),
        ("..", None),
        ("", None),
    ],
)
def test_slugify_examples(text: str, slug: str | None) -> None:
    out = slugify(text)
    if slug is None:
        assert re.fullmatch(r"u-[0-9a-f]{10}", out)
    else:
        assert out == slug


def test_long_slug_is_cut_with_hash() -> None:
    a = slugify("Abcdefghij " * 6 + "One")
    b = slugify("Abcdefghij " * 6 + "Two")
    assert len(a) <= SLUG_MAX_LEN and len(b) <= SLUG_MAX_LEN
    assert a != b and SLUG_RE.match(a)


def test_slug_is_stable_forever() -> None:
    # Pinned values: changing them would orphan every stored stem/message keyed by slug.
    assert slugify("李雷") == "u-" + hashlib.sha256("李雷".encode()).hexdigest()[:10]
    assert slugify("José") == "jose"


def test_assign_keys_resolves_chain_collisions() -> None:
    # the suffixed key of one value equals the plain slug of another: still unique
    displays = ["Anne Marie", "Anne-Marie"]
    first = assign_keys(displays)
    clash = first[1]  # "anne-marie-xxxxxx"
    keys = assign_keys([*displays, clash.replace("-", " ")])
    assert len(set(keys)) == 3


# ------------------------------------------------------------------- result/serialisation


def test_result_to_dict_is_json_and_round_trips() -> None:
    result = normalize_items("names", ["Zoë", "zoe", "=x", "李雷"], source="names.csv")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["kind"] == "names" and data["source"] == "names.csv"
    assert data["fingerprint"] == result.fingerprint
    assert DatasetResult.from_dict(data) == result
    assert DatasetResult.from_dict(data).fingerprint == result.fingerprint


def test_fingerprint_depends_on_content_not_order() -> None:
    a = normalize_items("names", ["John", "Maria"], source="a")
    b = normalize_items("names", ["Maria", "John"], source="b")
    c = normalize_items("names", ["John", "Mario"], source="a")
    d = normalize_items("developers", ["John", "Maria"], source="a")
    assert a.fingerprint == b.fingerprint
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3
    assert a.fingerprint == dataset_fingerprint("names", reversed(a.items))


# ----------------------------------------------------------------------------- properties

# Characters that produce many accepted values, collisions and duplicates.
_NAMEY = st.text(
    alphabet=st.sampled_from(list("aAbBeEéÉëoOøzZ -'’|.李雷ßſ") + ["\u0301", "\u200b", "="]),
    min_size=1,
    max_size=12,
)
_ANY = st.one_of(st.text(max_size=30), _NAMEY)


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_slugify_always_valid(text: str) -> None:
    slug = slugify(text)
    assert SLUG_RE.match(slug)
    assert "|" not in slug and slug not in (".", "..")
    assert 0 < len(slug) <= SLUG_MAX_LEN
    assert slugify(text) == slug


@given(st.lists(_ANY, max_size=25), st.sampled_from(["names", "developers"]))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_normalize_never_crashes_and_accounts_for_every_row(raw: list[str], kind: str) -> None:
    result = normalize_items(kind, raw, source="p")
    rows = sorted([i.row for i in result.items] + [r.row for r in result.rejects])
    assert rows == list(range(1, len(raw) + 1))
    keys = [i.key for i in result.items]
    assert len(keys) == len(set(keys))
    assert len({fold(i.display) for i in result.items}) == len(result.items)
    for item in result.items:
        assert SLUG_RE.match(item.key) and "|" not in item.key and len(item.key) <= SLUG_MAX_LEN
        assert clean_value(kind, item.display) == item.display  # cleaning is idempotent
        assert unicodedata.is_normalized("NFC", item.display)
    json.dumps(result.to_dict())


@given(st.lists(_NAMEY, max_size=25, unique_by=fold), st.randoms(use_true_random=False))
@settings(max_examples=200, deadline=None)
def test_reordering_rows_never_changes_a_slug(raw: list[str], rnd: random.Random) -> None:
    before = {i.display: i.key for i in normalize_items("names", raw, source="p").items}
    shuffled = list(raw)
    rnd.shuffle(shuffled)
    after = normalize_items("names", shuffled, source="p")
    assert {i.display: i.key for i in after.items} == before
    assert after.fingerprint == normalize_items("names", raw, source="p").fingerprint


@given(st.lists(_NAMEY, max_size=25), st.randoms(use_true_random=False))
@settings(max_examples=200, deadline=None)
def test_reordering_with_duplicates_keeps_slug_per_dedup_class(raw: list[str], rnd: random.Random) -> None:
    # which spelling of a duplicate survives depends on order, but its slug does not
    before = {fold(i.display): i.key for i in normalize_items("names", raw, source="p").items}
    shuffled = list(raw)
    rnd.shuffle(shuffled)
    after = {fold(i.display): i.key for i in normalize_items("names", shuffled, source="p").items}
    assert after == before


@given(st.text(alphabet=st.sampled_from("AbcZz '\t-.1=é"), max_size=45), st.sampled_from(["names", "developers"]))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_plain_ascii_fast_path_agrees_with_every_rule(raw, kind):
    """A value of ASCII letters in single-spaced words skips the per-character checks; the
    answer is the one the full rules give."""
    from hybrid_audio_dagster.core.datasets import validation

    fast = validation.check_value(kind, raw)
    saved = validation._PLAIN_ASCII
    validation._PLAIN_ASCII = re.compile(r"(?!)")  # never matches: every value takes the full rules
    try:
        assert validation.check_value(kind, raw) == fast
    finally:
        validation._PLAIN_ASCII = saved


@pytest.mark.slow
def test_stored_lists_are_read_with_the_reference_bounds(tmp_path):
    """A stored 150,000-row list (over the by-value row limit) still builds its dataset."""
    from hybrid_audio_dagster.core.datasets.snapshot import build_dataset
    from hybrid_audio_dagster.core.inbox.parse import DEFAULT_MAX_ROWS, REFERENCE_MAX_BYTES, REFERENCE_MAX_ROWS
    from testkit.project import make_project

    paths = make_project(tmp_path, ["John"], ["Wyndham"])
    n = DEFAULT_MAX_ROWS + 50_000
    assert n < REFERENCE_MAX_ROWS and REFERENCE_MAX_BYTES >= 32 * 1024 * 1024
    letters = "abcdefghijklmnopqrstuvwxyz"
    names = ["Ann" + "".join(letters[(i // 26**k) % 26] for k in range(4)) for i in range(n)]
    (paths.dataset_store / "names").mkdir(parents=True, exist_ok=True)
    (paths.dataset_store / "names" / "20260101T000000000000Z-00000000-names-big.csv").write_text("name\n" + "\n".join(names) + "\n")
    result = build_dataset(paths, "names")
    assert len(result.items) == n + 1  # and John from the seed file
