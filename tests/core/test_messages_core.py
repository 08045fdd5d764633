"""The message planner: signatures and pauses, independent of Dagster."""

import hashlib
import json

import pytest

from hybrid_audio_dagster.core.audio.timing import ms_to_frames
from hybrid_audio_dagster.core.messages.plan import MessagePlanner, plan_message
from hybrid_audio_dagster.core.stems.store import StemRecord
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import load_templates
from hybrid_audio_dagster.defs.resources.paths import PROJECT_ROOT
from tests.support.stems import fake_record

TEMPLATES = load_templates(PROJECT_ROOT / "templates")


def lookup(kind: SegmentKind, segment_id: str, text: str) -> StemRecord:
    return fake_record(text)


def reference_signature(template, name: str, developer: str) -> str:
    """The signature spelled out from its definition, with json.dumps, no shortcuts."""
    texts = [s.render(name=name, developer=developer) for s in template.segments]
    recs = [fake_record(t) for t in texts]
    rate = recs[0].sample_rate
    transitions = []
    for i, t in enumerate(texts[:-1]):
        _, pause_ms, cf_ms = template.transition_after(i, t)
        transitions.append([ms_to_frames(pause_ms, rate), ms_to_frames(cf_ms, rate)])
    payload = {
        "assembler": 1,
        "lead": ms_to_frames(template.timing.lead_ms, rate),
        "tail": ms_to_frames(template.timing.tail_ms, rate),
        "segments": [[s.id, r.sha256, r.trim_start, r.trim_end] for s, r in zip(template.segments, recs, strict=True)],
        "transitions": transitions,
    }
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()


@pytest.mark.parametrize("template_id", sorted(TEMPLATES))
@pytest.mark.parametrize("name", ["John", "J.R.", "Zoë", "Ann|Marie", "李雷"])
def test_planner_signature_matches_its_definition(template_id, name):
    tpl = TEMPLATES[template_id]
    planner = MessagePlanner(tpl, developer_key="wyndham", developer="Wyndham", stem_for=lookup)
    plan = planner.plan(name_key="k", name=name, stem_for=lookup)
    assert plan.input_signature == reference_signature(tpl, name, "Wyndham")
    # the one-off form and a reused planner agree, whatever was planned before
    planner.plan(name_key="x", name="Someone Else", stem_for=lookup)
    again = planner.plan(name_key="k", name=name, stem_for=lookup)
    assert again == plan == plan_message(tpl, name_key="k", name=name, developer_key="wyndham", developer="Wyndham", stem_for=lookup)


def test_signature_changes_with_every_input_that_shapes_the_bytes():
    tpl = TEMPLATES["followup-en"]
    base = plan_message(tpl, name_key="k", name="John", developer_key="d", developer="Wyndham", stem_for=lookup).input_signature
    other_name = plan_message(tpl, name_key="k", name="Johnny", developer_key="d", developer="Wyndham", stem_for=lookup)
    other_dev = plan_message(tpl, name_key="k", name="John", developer_key="d", developer="Hilton", stem_for=lookup)
    slower = tpl.model_copy(update={"timing": tpl.timing.model_copy(update={"sentence_ms": 500})})
    other_timing = plan_message(slower, name_key="k", name="John", developer_key="d", developer="Wyndham", stem_for=lookup)
    assert len({base, other_name.input_signature, other_dev.input_signature, other_timing.input_signature}) == 4
