"""``stem_preview_job``: one name's stems, said with a pronunciation to try, before a campaign.

Behind ``hybrid-audio generate name NAME --pronunciation P``. The op renders every name
segment of the templates (or of one) for the name, with ``P`` (a respelling or ``/IPA/``,
validated like a dataset cell) or, without it, the pronunciation the dataset already has, and
finds or synthesizes each stem in the store. It records no asset materialization, so the
stems partitions and the next batch's plan are untouched; the stems are content-addressed, so
once the dataset carries the same pronunciation the batch finds them and makes no TTS call.
The name is data, never a path: it is validated with the names rules and the files are named
by signature. The spend guard sees the estimate before any call.
"""

import dagster as dg

from hybrid_audio_dagster.core.datasets.slugs import fold
from hybrid_audio_dagster.core.datasets.snapshot import LEXICON_FILE, read_says, read_snapshot
from hybrid_audio_dagster.core.datasets.validation import InvalidValueError, clean_value
from hybrid_audio_dagster.core.pronounce.lexicon import LexiconError, load_lexicon, says_for, says_in_text
from hybrid_audio_dagster.core.pronounce.spec import PronunciationError, Say, parse_pronunciation
from hybrid_audio_dagster.core.spend import BudgetExceeded, check_budget
from hybrid_audio_dagster.core.stems.identity import stem_signature
from hybrid_audio_dagster.core.stems.store import StemStore
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import load_templates
from hybrid_audio_dagster.core.tts.base import TTSError
from hybrid_audio_dagster.defs.cli_result import cli_result, refused
from hybrid_audio_dagster.defs.pools import TTS_POOL
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.defs.resources.budget import SpendGuardResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import TTSResource


class StemPreviewConfig(dg.Config):
    """A name (its slug in the names dataset, or any text the names rules accept), the
    pronunciation to try (empty: the dataset's own, or none), one template (empty: all)."""

    name: str
    pronunciation: str = ""
    template: str = ""
    max_chars: int | None = None


def _said(paths: ProjectPaths, name: str, pronunciation: str) -> tuple[str, str | None, tuple[Say, ...]]:
    """(display, its slug if the dataset has it, the substitutions to apply)."""
    try:
        names = read_snapshot(paths, "names")
    except FileNotFoundError:
        names = {}
    key = name if name in names else next((k for k, d in names.items() if fold(d) == fold(name)), None)
    if key is not None:
        display = names[key]
    else:
        try:
            display = clean_value("names", name)
        except InvalidValueError as exc:
            raise refused(f"name refused ({exc.code}): {exc.message}", problem=exc.code) from None
    try:
        pron = parse_pronunciation(pronunciation)
    except PronunciationError as exc:
        raise refused(f"pronunciation refused ({exc.code}): {exc.message}", problem=exc.code) from None
    if pron is not None:
        return display, key, (Say(display, pron.value),)
    if key is not None:
        return display, key, read_says(paths, "names").get(key, ())
    try:
        return display, key, says_for(display, None, load_lexicon(paths.data / LEXICON_FILE))
    except LexiconError as exc:
        raise dg.Failure(f"the pronunciation lexicon is refused: {exc}") from None


@dg.op(description="Finds or synthesizes one name's stems with a pronunciation to try (no asset is recorded).", pool=TTS_POOL)
def stem_preview(
    context: dg.OpExecutionContext, config: StemPreviewConfig, paths: ProjectPaths, tts: TTSResource, spend_guard: SpendGuardResource
) -> dg.Output[dict]:
    display, key, says = _said(paths, config.name, config.pronunciation)
    templates = load_templates(paths.templates)
    if config.template and config.template not in templates:
        raise refused(f"unknown template {config.template!r} (known: {', '.join(templates)})", problem="unknown_template")
    store = StemStore(paths.stems)
    todo = []
    for tpl in templates.values():
        if config.template and tpl.id != config.template:
            continue
        voice = tpl.voice_settings()
        for seg in tpl.segments_of(SegmentKind.NAME):
            text = seg.render(name=display)
            say = says_in_text(text, says)
            try:
                contract = tts.contract(voice)
                contract = tts.pronunciation_contract(contract) if say else contract
            except TTSError as exc:
                raise dg.Failure(f"{tpl.id}/{seg.id}: {exc}") from None
            sig = stem_signature(text, contract, say)
            todo.append((tpl.id, seg.id, text, voice, contract, say, sig, store.find(sig, contract.engine)))
    estimate = sum(len(t[2]) for t in todo if t[7] is None)
    try:
        check_budget(estimate, spend_guard.budget(config.max_chars), automated=False, spent_today=0, engine=tts.engine_name)
    except BudgetExceeded as exc:
        raise dg.Failure(str(exc)) from None
    audit = run_auditor(context, paths)
    said = tuple(sorted({x for t in todo if t[7] is None for x in t[5]}))
    if said:
        try:
            tts.prepare_pronunciations(said)
        except TTSError as exc:
            raise dg.Failure(f"pronunciations could not be prepared: {exc}") from None
    rows = []
    for tid, sid, text, voice, contract, say, sig, found in todo:
        try:
            outcome = store.obtain(text, voice, tts, contract=contract, known=found, say=say, on_tts=lambda e: audit("tts_call", **e))
        except (TTSError, ValueError, OSError) as exc:
            raise dg.Failure(f"{tid}/{sid}: {exc}") from None
        rec = outcome.record
        rows.append(
            {
                "template": tid,
                "segment": sid,
                "text": text,
                "say": [s.to_list() for s in say],
                "signature": sig,
                "path": str(paths.stems / rec.path),
                "relpath": rec.path,
                "sha256": rec.sha256,
                "duration_s": round(rec.frames / rec.sample_rate, 3),
                "cache_hit": outcome.cache_hit,
            }
        )
    calls = sum(1 for r in rows if not r["cache_hit"])
    audit("stem_preview", stems=len(rows), tts_calls=calls, chars=sum(len(r["text"]) for r in rows if not r["cache_hit"]))
    value = {"name": display, "key": key, "pronunciation": [s.to_list() for s in says], "stems": rows, "tts_calls": calls}
    return cli_result(value)


@dg.job(description="One name's stems with a pronunciation to try, before a campaign (`hybrid-audio generate name --pronunciation`).")
def stem_preview_job() -> None:
    stem_preview()
