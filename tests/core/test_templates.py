"""Acceptance tests of the template format (``core/templates.py``) and its shipped files."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_audio_dagster.core.audio.timing import Boundary
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.template_variants import split_variant_key, variant_key
from hybrid_audio_dagster.core.templates import Segment, Template, TemplateError, load_template, load_templates, parse_template

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "templates"
BROKEN = Path(__file__).resolve().parent / "broken_templates"


# --------------------------------------------------------------------------------------
# shipped templates
# --------------------------------------------------------------------------------------


def test_every_shipped_template_validates() -> None:
    loaded = load_templates(TEMPLATES)
    files = sorted(p.stem for p in TEMPLATES.glob("*.json"))
    assert sorted({t.base_id for t in loaded.values()}) == files and files, "one template per file, keyed by id"
    declared = {variant_key(f, v) for f in files for v in load_template(TEMPLATES / f"{f}.json").variants}
    assert set(loaded) == set(files) | declared, "plus one entry per declared variant"
    for tid, t in loaded.items():
        assert t.id == tid and not t.variants
        assert t.segments_of(SegmentKind.NAME), f"{tid}: no name segment"
        # every segment renders, leaving no placeholder behind
        for s in t.segments:
            text = s.render(name="Ana", developer="Hilton")
            assert "{" not in text and "}" not in text
        assert len(t.signature()) == 64


def test_load_templates_relative_path(monkeypatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    assert set(load_templates("templates")) == set(load_templates(TEMPLATES))


def test_followup_en_shape() -> None:
    t = load_template(TEMPLATES / "followup-en.json")
    assert [s.kind for s in t.segments] == [
        SegmentKind.NAME,
        SegmentKind.SCRIPT,
        SegmentKind.SCRIPT,
        SegmentKind.DEVELOPER,
        SegmentKind.SCRIPT,
        SegmentKind.SCRIPT,
    ]
    assert t.voice_settings().language == "en"


def test_load_templates_of_an_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no \\*.json"):
        load_templates(tmp_path)


# --------------------------------------------------------------------------------------
# the broken corpus: file -> field the message must name, and what is wrong with it
# --------------------------------------------------------------------------------------

BROKEN_CASES = {
    "unknown-placeholder": ("segments[0].text", "{first_name}"),
    "name-and-developer": ("segments[0].text", "both"),
    "repeated-placeholder": ("segments[0].text", "{name}"),
    "duplicate-segment-id": ("segments[2].id", "duplicate"),
    "empty-text": ("segments[2].text", ""),
    "whitespace-text": ("segments[2].text", "empty"),
    "padded-text": ("segments[2].text", "whitespace"),
    "text-too-long": ("segments[2].text", "500"),
    "negative-pause": ("transitions.greeting.pause_ms", "0"),
    "negative-timing": ("timing.clause_ms", "0"),
    "absurd-pause": ("transitions.greeting.pause_ms", "5000"),
    "absurd-timing": ("timing.sentence_ms", "5000"),
    "crossfade-and-pause": ("transitions.greeting", "crossfade"),
    "crossfade-too-long": ("transitions.greeting.crossfade_ms", "200"),
    "transition-unknown-segment": ("transitions.intro", "no segment"),
    "transition-after-last": ("transitions.close", "last segment"),
    "transition-unknown-field": ("transitions.brand.pause", ""),
    "wrong-schema-version": ("schema_version", "2"),
    "schema-version-string": ("schema_version", ""),
    "missing-schema-version": ("schema_version", "required"),
    "missing-id": ("id", "required"),
    "bad-segment-id": ("segments[1].id", ""),
    "missing-segment-text": ("segments[1].text", "required"),
    "bad-language": ("language", ""),
    "uppercase-language": ("language", ""),
    "speed-too-fast": ("voice.speed", "1.5"),
    "speed-not-a-number": ("voice.speed", ""),
    "volume-too-low": ("voice.volume", "0.5"),
    "bad-voice-uuid": ("voice.id", "voice-123"),
    "unknown-emotion": ("voice.emotion", "ecstatic"),
    "unknown-top-level-field": ("colour", ""),
    "unknown-segment-field": ("segments[0].speaker", ""),
    "no-name-segment": ("segments", "{name}"),
    "no-segments": ("segments", ""),
    "version-zero": ("version", "1"),
    "unbalanced-brace": ("segments[0].text", "unbalanced"),
    "unclosed-placeholder": ("segments[1].text", "unbalanced"),
    "id-not-file-name": ("id", "file name"),
    "id-with-variant-separator": ("id", "'--'"),
    # variants: strict, before any TTS call, naming the variant and its field
    "variant-unknown-segment": ("variants.soft_warm.segments.outro", "no segment"),
    "variant-both-placeholders": ("variants.soft_warm.segments.greeting", "both"),
    "variant-adds-placeholder": ("variants.soft_warm.segments.close", "keeps each segment's placeholder"),
    "variant-drops-placeholder": ("variants.soft_warm.segments.greeting", "keeps each segment's placeholder"),
    "variant-bad-name": ("variants.Soft Warm", "variant name"),
    "variant-name-double-separator": ("variants.soft--warm", "variant name"),
    "variant-speed-too-slow": ("variants.soft_warm.voice.speed", "0.6"),
    "variant-unknown-emotion": ("variants.soft_warm.voice.emotion", "ecstatic"),
    "variant-null-speed": ("variants.soft_warm.voice.speed", "number"),
    "variant-overrides-nothing": ("variants.soft_warm", "overrides nothing"),
    "variant-unknown-field": ("variants.soft_warm.language", "not permitted"),
    "variant-transition-after-last": ("variants.soft_warm.transitions.close", "last segment"),
    "variant-bad-text": ("variants.soft_warm.segments.close", "whitespace"),
    "too-many-variants": ("variants", "at most 8"),
    # not a field: the whole file is unreadable
    "not-json": (None, "not valid JSON"),
    "trailing-garbage": (None, "not valid JSON"),
    "not-utf8": (None, "not valid JSON"),
    "top-level-array": (None, "object"),
}


def test_the_corpus_is_complete() -> None:
    assert sorted(p.stem for p in BROKEN.glob("*.json")) == sorted(BROKEN_CASES)


@pytest.mark.parametrize("name", sorted(BROKEN_CASES))
def test_broken_template_is_refused_naming_the_field(name: str) -> None:
    field, problem = BROKEN_CASES[name]
    path = BROKEN / f"{name}.json"
    with pytest.raises(TemplateError) as exc:
        load_template(path)
    msg = str(exc.value)
    assert msg.startswith(str(path) + ": "), "the message names the file first"
    if field is not None:
        # the field appears as a locator of its own ("<file>: field: ..." or "; field: ...")
        assert re.search(rf"(?:^|: |; ){re.escape(field)}: ", msg[len(str(path)) :]), msg
    assert problem.lower() in msg.lower()


@pytest.mark.parametrize("name", sorted(n for n in BROKEN_CASES if n != "id-not-file-name"))
def test_broken_template_text_is_refused_by_parse_template(name: str) -> None:
    with pytest.raises(TemplateError) as exc:
        parse_template((BROKEN / f"{name}.json").read_bytes(), f"upload:{name}")
    assert str(exc.value).startswith(f"upload:{name}: ")


def test_one_bad_file_fails_the_whole_directory_and_every_error_is_listed(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as exc:
        load_templates(BROKEN)
    for name in BROKEN_CASES:
        assert f"{name}.json" in str(exc.value)
    # a good directory plus one broken file: refused as a whole
    for p in TEMPLATES.glob("*.json"):
        shutil.copy(p, tmp_path)
    shutil.copy(BROKEN / "unknown-emotion.json", tmp_path)
    with pytest.raises(TemplateError, match="unknown-emotion.json"):
        load_templates(tmp_path)


# --------------------------------------------------------------------------------------
# rendering: plain replacement, data is not code
# --------------------------------------------------------------------------------------

NASTY = ["{developer}", "{name}", "{0}", "{}", "%s", "%(name)s", "{name!r}", "\\1", "\\g<0>", "$name", "{{name}}", "}{", "Ana}"]


@pytest.mark.parametrize("value", NASTY)
def test_render_is_literal(value: str) -> None:
    name_seg = Segment(id="greeting", text="Hey {name},")
    dev_seg = Segment(id="brand", text="about your {developer} timeshare.")
    assert name_seg.render(name=value, developer="Hilton") == f"Hey {value},"
    assert dev_seg.render(name="Ana", developer=value) == f"about your {value} timeshare."
    assert Segment(id="s", text="Talk soon!").render(name=value, developer=value) == "Talk soon!"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_render_is_plain_replacement_for_any_text(value: str) -> None:
    seg = Segment(id="greeting", text="Hey {name}, it's me.")
    assert seg.render(name=value) == "Hey " + value + ", it's me."


def test_render_needs_its_placeholder_value() -> None:
    with pytest.raises(ValueError, match="greeting"):
        Segment(id="greeting", text="Hey {name},").render(developer="Hilton")
    with pytest.raises(ValueError, match="brand"):
        Segment(id="brand", text="{developer} timeshare.").render(name="Ana")


def test_segment_kinds() -> None:
    assert Segment(id="a", text="Hey {name},").kind is SegmentKind.NAME
    assert Segment(id="b", text="{developer}.").kind is SegmentKind.DEVELOPER
    assert Segment(id="c", text="Talk soon!").kind is SegmentKind.SCRIPT


# --------------------------------------------------------------------------------------
# semantic timing from the template: overrides beat the rules
# --------------------------------------------------------------------------------------


def _template(**changes) -> Template:
    d = {
        "schema_version": 1,
        "id": "t",
        "version": 1,
        "language": "en",
        "timing": {"sentence_ms": 500, "clause_ms": 250, "phrase_ms": 70},
        "segments": [
            {"id": "greeting", "text": "Hey {name},"},
            {"id": "lead-in", "text": "about your"},
            {"id": "brand", "text": "{developer} timeshare."},
            {"id": "note", "text": "Here is the thing:"},
            {"id": "close", "text": "Talk soon!"},
        ],
    }
    d.update(changes)
    return Template.model_validate(d)


def test_transition_after_follows_the_rules_without_overrides() -> None:
    t = _template()
    texts = [s.render(name="Ana", developer="Hilton") for s in t.segments]
    got = [t.transition_after(i, texts[i]) for i in range(4)]
    assert got == [
        (Boundary.CLAUSE, 250, 0),
        (Boundary.PHRASE, 70, 0),
        (Boundary.SENTENCE, 500, 0),
        (Boundary.CLAUSE, 250, 0),
    ]


def test_template_overrides_beat_the_rules() -> None:
    t = _template(
        transitions={
            "greeting": {"pause_ms": 150},  # clause rule says 250
            "lead-in": {"crossfade_ms": 30},  # phrase rule says 70 ms pause
            "brand": {"pause_ms": 0},  # explicit 0 beats the sentence rule
            "note": {"crossfade_ms": 0},  # no pause_ms given: the rule applies
        }
    )
    texts = [s.render(name="Ana", developer="Hilton") for s in t.segments]
    assert t.transition_after(0, texts[0]) == (Boundary.CLAUSE, 150, 0)
    assert t.transition_after(1, texts[1]) == (Boundary.PHRASE, 0, 30)
    assert t.transition_after(2, texts[2]) == (Boundary.SENTENCE, 0, 0)
    assert t.transition_after(3, texts[3]) == (Boundary.CLAUSE, 250, 0)


def test_crossfade_with_explicit_zero_pause_is_allowed() -> None:
    t = _template(transitions={"lead-in": {"pause_ms": 0, "crossfade_ms": 40}})
    assert t.transition_after(1, "about your") == (Boundary.PHRASE, 0, 40)


def test_boundary_is_classified_on_the_rendered_text() -> None:
    t = _template(segments=[{"id": "a", "text": "This is for {name}"}, {"id": "b", "text": "Talk soon!"}])
    assert t.transition_after(0, t.segments[0].render(name="Ana")) == (Boundary.PHRASE, 70, 0)
    assert t.transition_after(0, t.segments[0].render(name="Ana Jr.")) == (Boundary.SENTENCE, 500, 0)


def test_shipped_followup_en_transitions() -> None:
    t = load_template(TEMPLATES / "followup-en.json")
    texts = [s.render(name="Ana", developer="Hilton") for s in t.segments]
    assert [t.transition_after(i, texts[i]) for i in range(len(texts) - 1)] == [
        (Boundary.CLAUSE, 150, 0),  # override (rule: 200)
        (Boundary.SENTENCE, 450, 0),
        (Boundary.PHRASE, 40, 0),  # override (rule: 60)
        (Boundary.SENTENCE, 450, 0),
        (Boundary.SENTENCE, 450, 0),
    ]


def test_signature_tracks_everything_that_shapes_audio() -> None:
    base = json.loads((TEMPLATES / "followup-en.json").read_text())
    sig = parse_template(json.dumps(base)).signature()
    assert parse_template(json.dumps(base, indent=4)).signature() == sig  # formatting is not content
    changed = json.loads(json.dumps(base))
    changed["transitions"]["greeting"]["pause_ms"] = 151
    assert parse_template(json.dumps(changed)).signature() != sig
    changed = json.loads(json.dumps(base))
    changed["voice"]["speed"] = 1.1
    assert parse_template(json.dumps(changed)).signature() != sig


# --------------------------------------------------------------------------------------
# variants: each one a template of its own under "<id>--<variant>"
# --------------------------------------------------------------------------------------


def _with_variants(**variants) -> Template:
    base = _template().model_dump(exclude={"variants"})
    return Template.model_validate({**base, "variants": variants})


def test_a_variant_overrides_only_what_it_declares() -> None:
    t = _with_variants(
        soft={
            "voice": {"speed": 0.9, "emotion": "calm"},
            "timing": {"sentence_ms": 700},
            "segments": {"close": "Take care!"},
            "transitions": {"greeting": {"crossfade_ms": 20}},
        },
    )
    v = t.expand()["t--soft"]
    assert v.id == "t--soft" and (v.base_id, v.variant_name) == ("t", "soft") and not v.variants
    assert v.voice.model_dump() == {**t.voice.model_dump(), "speed": 0.9, "emotion": "calm"}
    assert v.timing.model_dump() == {**t.timing.model_dump(), "sentence_ms": 700}
    assert [s.text for s in v.segments] == [s.text for s in t.segments[:-1]] + ["Take care!"]
    assert v.transition_after(0, "Hey Ana,") == (Boundary.CLAUSE, 0, 20)
    assert v.transition_after(2, "Hilton timeshare.") == (Boundary.SENTENCE, 700, 0)
    assert v.voice_settings().language == t.language and v.language == t.language


def test_expand_keeps_the_template_and_adds_one_key_per_variant() -> None:
    t = _with_variants(b={"timing": {"lead_ms": 10}}, a={"voice": {"volume": 1.5}})
    out = t.expand()
    assert list(out) == ["t", "t--a", "t--b"]
    assert out["t"].model_dump(exclude={"variants"}) == t.model_dump(exclude={"variants"}) and not out["t"].variants
    assert len({x.signature() for x in out.values()}) == 3


def test_declaring_variants_changes_neither_the_template_nor_its_signature() -> None:
    plain = _template()
    t = _with_variants(soft={"voice": {"speed": 0.9}})
    assert t.signature() == plain.signature() == t.expand()["t"].signature()
    data = json.loads((TEMPLATES / "followup-en.json").read_text())
    assert data["variants"], "the shipped template declares variants"
    without = {k: v for k, v in data.items() if k != "variants"}
    assert parse_template(json.dumps(data)).signature() == parse_template(json.dumps(without)).signature()


def test_variant_keys_never_collide_with_template_ids() -> None:
    assert split_variant_key("followup-en--soft_warm") == ("followup-en", "soft_warm")
    assert split_variant_key("followup-en") == ("followup-en", None)
    assert split_variant_key(variant_key("a-", "b")) == ("a-", "b")  # an id may end in '-'
    with pytest.raises(TemplateError, match="'--'"):
        parse_template(json.dumps({**_template().model_dump(mode="json", exclude={"variants"}), "id": "t--soft"}))


def test_shipped_followup_en_variants() -> None:
    loaded = load_templates(TEMPLATES)
    base, soft, fast = loaded["followup-en"], loaded["followup-en--soft_warm"], loaded["followup-en--fast_assertive"]
    assert soft.voice.speed < base.voice.speed and soft.timing.sentence_ms > base.timing.sentence_ms
    assert fast.voice.speed == base.voice.speed and fast.timing.sentence_ms < base.timing.sentence_ms
    assert [s.kind for s in soft.segments] == [s.kind for s in base.segments] == [s.kind for s in fast.segments]
