"""Names said right (issue #15 part 2): pronunciations in datasets, the lexicon, signatures,
and how each engine says them (espeak-ng offline, Cartesia's dictionary on the loopback server)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.core.datasets.items import dataset_fingerprint
from hybrid_audio_dagster.core.datasets.normalize import normalize_items
from hybrid_audio_dagster.core.pronounce.lexicon import LexiconError, parse_lexicon, says_for
from hybrid_audio_dagster.core.pronounce.realize import cartesia_item, substitute
from hybrid_audio_dagster.core.pronounce.spec import PronunciationError, Say, parse_pronunciation
from hybrid_audio_dagster.core.stems.identity import TRIM_SETTINGS, signature_of_identity, stem_signature
from hybrid_audio_dagster.core.tts.base import VoiceSettings
from hybrid_audio_dagster.core.tts.espeak import EspeakEngine
from hybrid_audio_dagster.defs.resources.tts import OfflineTTSResource
from hybrid_audio_dagster.runner.batch import run_full_batch
from testkit.project import make_project
from tests.support.campaign import all_messages_verified

EN = VoiceSettings(language="en")


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "raw, value",
    [
        ("shi-VAWN", "shi-VAWN"),
        ("  WIND-um ", "WIND-um"),
        ("MARE-ee-ut", "MARE-ee-ut"),
        ("AN mah-REE", "AN mah-REE"),
        (" /ʃɪˈvɔːn/ ", "/ʃɪˈvɔːn/"),
        ("/ˈwɪn.dəm/", "/ˈwɪn.dəm/"),
        ("", None),
        (None, None),
    ],
)
def test_accepted_pronunciations(raw, value):
    got = parse_pronunciation(raw)
    assert (got.value if got else None) == value


@pytest.mark.parametrize(
    "raw, code, says",
    [
        ("shi_VAWN", "bad_respelling", "'_' is not allowed"),
        ("=HYPERLINK(1)", "bad_respelling", "'=' is not allowed"),
        ("../../etc", "bad_respelling", "'.' is not allowed"),
        ("<break time='9s'/>", "bad_respelling", "'<' is not allowed"),
        ("shi--VAWN", "bad_respelling", "between letters"),
        ("zoh1", "bad_respelling", "'1' is not allowed"),
        ("SHI-" + "vawn-" * 12 + "x", "pronunciation_too_long", "limit is 60"),
        ("/ʃɪˈvɔːn", "bad_ipa", "slashes"),
        ("/ʃɪ/vɔːn/", "bad_ipa", "slashes"),
        ("/ʃɪˈvɔːn🙂/", "bad_ipa", "U+1F642"),
        ("/ː/", "bad_ipa", "follows no vowel"),
        ("/ˈ/", "bad_ipa", "no phoneme"),
        (42, "bad_pronunciation", "expected text"),
    ],
)
def test_bad_pronunciations_are_refused_clearly(raw, code, says):
    with pytest.raises(PronunciationError) as err:
        parse_pronunciation(raw)
    assert err.value.code == code
    assert says in err.value.message


def test_a_bad_pronunciation_rejects_its_row_before_any_tts():
    result = normalize_items("names", ["John", "Siobhán", "Zoë"], source="t", pronunciations=[None, "shi-VAWN", "ZOH_ee"])
    assert [i.key for i in result.items] == ["john", "siobhan"]
    assert result.items[1].pronunciation == "shi-VAWN" and result.items[1].say == (("Siobhán", "shi-VAWN"),)
    (reject,) = result.rejects
    assert reject.row == 3 and reject.reason == "bad_respelling" and "ZOH_ee" in reject.message


def test_plain_items_keep_their_snapshot_form_and_fingerprint():
    plain = normalize_items("names", ["John", "Siobhán"], source="t")
    assert [i.to_dict() for i in plain.items] == [
        {"key": "john", "display": "John", "row": 1},
        {"key": "siobhan", "display": "Siobhán", "row": 2},
    ]
    # the formula every existing snapshot was fingerprinted with
    legacy = json.dumps(
        {"kind": "names", "items": sorted([i.key, i.display] for i in plain.items)}, ensure_ascii=False, separators=(",", ":")
    )
    import hashlib

    assert plain.fingerprint == hashlib.sha256(legacy.encode()).hexdigest()
    said = normalize_items("names", ["John", "Siobhán"], source="t", pronunciations=["", "shi-VAWN"])
    assert said.fingerprint != plain.fingerprint
    assert dataset_fingerprint("names", said.items) == said.fingerprint


# ------------------------------------------------------------------------------- lexicon


def test_lexicon_applies_whole_words_and_a_row_pronunciation_wins():
    lex = parse_lexicon("text,pronunciation\nWyndham,WIND-um\nMarriott,MARE-ee-ut\n# comment,\n")
    assert says_for("Club Wyndham", None, lex) == (Say("Wyndham", "WIND-um"),)
    assert says_for("Marriott Vacation Club", None, lex) == (Say("Marriott", "MARE-ee-ut"),)
    assert says_for("Wyndhamton Resorts", None, lex) == ()
    assert says_for("Hilton Grand Vacations", None, lex) == ()
    assert says_for("Wyndham", "WIN-dum", lex) == (Say("Wyndham", "WIN-dum"),)


@pytest.mark.parametrize(
    "text, message",
    [
        ("word,pronunciation\nWyndham,WIND-um\n", "header"),
        ("text,pronunciation\nWyndham,WIND_um\n", "row 2 ('Wyndham')"),
        ("text,pronunciation\nWyndham,\n", "empty"),
        ("text,pronunciation\n../x,EKS\n", "row 2"),
        ("text,pronunciation\nWyndham,WIND-um\nWyndham,WIN-dum\n", "listed twice"),
    ],
)
def test_bad_lexicon_rows_fail_the_file_with_their_row(text, message):
    with pytest.raises(LexiconError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_lexicon(text)


def test_shipped_lexicon_parses_and_covers_the_misheard_brands():
    from hybrid_audio_dagster.core.pronounce.lexicon import load_lexicon
    from hybrid_audio_dagster.defs.resources.paths import PROJECT_ROOT

    lex = load_lexicon(PROJECT_ROOT / "data" / "lexicon.csv")
    assert lex["Wyndham"] == "WIND-um" and lex["Marriott"] == "MARE-ee-ut"


# ---------------------------------------------------------------------------- signatures


def test_plain_signatures_are_unchanged_and_a_respelling_makes_a_new_one():
    engine = EspeakEngine()
    plain = engine.contract(EN)
    assert "pronunciation" not in plain.to_dict()
    legacy = signature_of_identity({"v": 2, "text": "Hey Siobhán,", "contract": plain.to_dict(), "trim": TRIM_SETTINGS})
    assert stem_signature("Hey Siobhán,", plain) == legacy
    said = engine.pronunciation_contract(plain)
    one = stem_signature("Hey Siobhán,", said, (Say("Siobhán", "shi-VAWN"),))
    other = stem_signature("Hey Siobhán,", said, (Say("Siobhán", "SHEE-vohn"),))
    assert len({legacy, one, other}) == 3


def test_espeak_says_respellings_and_ipa_deterministically():
    engine = EspeakEngine()
    plain = engine.synthesize("Hey Siobhán,", EN)
    respelled = engine.synthesize("Hey Siobhán,", EN, say=(Say("Siobhán", "shi-VAWN"),))
    ipa = engine.synthesize("Hey Siobhán,", EN, say=(Say("Siobhán", "/ʃɪˈvɔːn/"),))
    assert len({plain, respelled, ipa}) == 3
    assert respelled == engine.synthesize("Hey Siobhán,", EN, say=(Say("Siobhán", "shi-VAWN"),))


def test_cartesia_items_and_substitution():
    assert cartesia_item(Say("Siobhán", "shi-VAWN")) == {"text": "Siobhán", "pronunciation": "shi-VAWN"}
    assert cartesia_item(Say("Siobhán", "/ʃɪˈvɔːn/")) == {"text": "Siobhán", "pronunciation": "<<ʃ|ɪ|ˈ|v|ɔː|n>>"}
    assert cartesia_item(Say("Mary Ann", "/ˈmɛɹi æn/"))["pronunciation"] == "<<ˈ|m|ɛ|ɹ|i>> <<æ|n>>"
    says = (Say("Wyndham", "W"), Say("Club Wyndham", "CW"))
    assert substitute("Club Wyndham and Wyndham, not Wyndhamton", says, lambda s: s.pronunciation) == "CW and W, not Wyndhamton"


# ----------------------------------------------------------------------- the asset graph


class SayCountingTTS(OfflineTTSResource):
    """The offline engine, logging each synthesis as a JSON line ``[text, say]``."""

    log_path: str

    def synthesize(self, text, voice, *, say=()):
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps([text, [s.to_list() for s in say]], ensure_ascii=False) + "\n")
        return super().synthesize(text, voice, say=say)


def logged(path: Path) -> list[tuple[str, list]]:
    return [tuple(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


NAMES = [("John", ""), ("Siobhán", "shi-VAWN"), ("Zoë", "/ˈzoʊ.i/"), ("Maria", "")]
DEVELOPERS = ["Hilton Grand Vacations", "Club Wyndham"]
LEXICON = "text,pronunciation\nWyndham,WIND-um\nMarriott,MARE-ee-ut\n"


def write_names(paths, rows) -> None:
    lines = ["name,pronunciation"] + [f'"{n}","{p}"' for n, p in rows]
    (Path(paths.data) / "names.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def said_project(tmp_path: Path):
    paths = make_project(tmp_path / "project", [n for n, _ in NAMES], DEVELOPERS)
    write_names(paths, NAMES)
    (Path(paths.data) / "lexicon.csv").write_text(LEXICON, encoding="utf-8")
    return paths


def name_segments(paths) -> int:
    from hybrid_audio_dagster.core.template_fields import SegmentKind
    from hybrid_audio_dagster.core.templates import load_templates

    return sum(len(t.segments_of(SegmentKind.NAME)) for t in load_templates(paths.templates).values())


def stem_sidecars(paths) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8"))["identity"] for p in Path(paths.stems).rglob("*.json")]


def test_respelling_change_resynthesizes_only_that_names_stems(said_project, tmp_path):
    paths = said_project
    log = tmp_path / "calls.jsonl"
    resources = {"paths": paths, "tts": SayCountingTTS(log_path=str(log))}
    instance = dg.DagsterInstance.ephemeral()
    first = run_full_batch(instance, resources)
    assert first.messages_failed == 0 and first.tts_calls == len(logged(log))
    calls = logged(log)
    # every Siobhán stem went out with her respelling, every brand stem with Wyndham's lexicon entry
    assert {tuple(map(tuple, say)) for text, say in calls if "Siobhán" in text} == {(("Siobhán", "shi-VAWN"),)}
    assert {tuple(map(tuple, say)) for text, say in calls if "Wyndham" in text} == {(("Wyndham", "WIND-um"),)}
    assert all(say == [] for text, say in calls if not any(w in text for w in ("Siobhán", "Zoë", "Wyndham")))
    identities = stem_sidecars(paths)
    assert any(i.get("say") == [["Siobhán", "shi-VAWN"]] and i["contract"]["pronunciation"] for i in identities)
    assert all("say" not in i and "pronunciation" not in i["contract"] for i in identities if "John" in i["text"])
    # the same text without the respelling would be another stem
    sig_said = {i["text"]: signature_of_identity(i) for i in identities if i.get("say") == [["Siobhán", "shi-VAWN"]]}
    contract = EspeakEngine().contract(EN)
    assert stem_signature("Hey Siobhán,", contract) not in sig_said.values()
    written = all_messages_verified(paths, instance)
    assert written == first.messages_written

    log.unlink()
    write_names(paths, [(n, "SHEE-vohn" if n == "Siobhán" else p) for n, p in NAMES])
    second = run_full_batch(instance, resources)
    again = logged(log)
    assert second.tts_calls == len(again) == name_segments(paths)  # her stems, one per name segment
    assert all("Siobhán" in text and say == [["Siobhán", "SHEE-vohn"]] for text, say in again)
    assert second.messages_written == len(DEVELOPERS) * len(instance.get_dynamic_partitions("templates"))
    all_messages_verified(paths, instance)

    log.unlink()
    third = run_full_batch(instance, resources)
    assert third.tts_calls == 0 and not log.exists()


def test_cartesia_dictionary_kept_in_step_on_the_loopback_server(said_project, monkeypatch):
    from hybrid_audio_dagster.defs.resources.tts import CartesiaTTSResource
    from testkit.cartesia_server import FakeCartesia

    paths = said_project
    key = "sk_car_pronunciation_test_0123456789"
    monkeypatch.setenv("CARTESIA_API_KEY", key)
    instance = dg.DagsterInstance.ephemeral()
    with FakeCartesia(key) as server:
        tts = CartesiaTTSResource(api_key=dg.EnvVar("CARTESIA_API_KEY"), base_url=server.base_url)
        first = run_full_batch(instance, {"paths": paths, "tts": tts})
        assert first.messages_failed == 0
        (d,) = server.dicts.dicts.values()
        assert d["name"] == "hybrid-audio"
        assert {i["text"]: i["pronunciation"] for i in d["items"]} == {"Siobhán": "shi-VAWN", "Zoë": "<<ˈ|z|oʊ|i>>", "Wyndham": "WIND-um"}
        tts_bodies = [r.json for r in server.tts_requests]
        said = [b for b in tts_bodies if any(w in b["transcript"] for w in ("Siobhán", "Zoë", "Wyndham"))]
        assert said and all(b["pronunciation_dict_id"] == d["id"] for b in said)
        assert all("pronunciation_dict_id" not in b for b in tts_bodies if b not in said)
        assert any("shi-VAWN" in t for t in server.dicts.spoken)  # the model heard the respelling
        creates = [r for r in server.requests if r.path.startswith("/pronunciation-dicts") and r.method == "POST"]
        assert len(creates) == 1

        server.reset()
        write_names(paths, [(n, "SHEE-vohn" if n == "Siobhán" else p) for n, p in NAMES])
        second = run_full_batch(instance, {"paths": paths, "tts": tts})
        patches = [r for r in server.requests if r.method == "PATCH"]
        assert len(patches) == 1 and {"text": "Siobhán", "pronunciation": "SHEE-vohn"} in patches[0].json["items"]
        assert {i["text"]: i["pronunciation"] for i in d["items"]}["Siobhán"] == "SHEE-vohn"
        assert second.tts_calls == len(server.tts_requests) == name_segments(paths)
        assert all("Siobhán" in r.json["transcript"] and r.json["pronunciation_dict_id"] == d["id"] for r in server.tts_requests)
        assert key not in json.dumps([r.json for r in server.requests], default=str)


# ------------------------------------------------------------------------- the preview


def preview(paths, tts, instance, **config):
    from hybrid_audio_dagster.definitions import build_defs

    defs = build_defs({"paths": paths, "tts": tts})
    job = defs.resolve_job_def("stem_preview_job")
    result = job.execute_in_process(instance=instance, run_config={"ops": {"stem_preview": {"config": config}}}, raise_on_error=False)
    return result, (result.output_for_node("stem_preview") if result.success else None)


def test_preview_stores_the_stems_the_batch_then_reuses(said_project, tmp_path):
    paths = said_project
    log = tmp_path / "calls.jsonl"
    tts = SayCountingTTS(log_path=str(log))
    instance = dg.DagsterInstance.ephemeral()
    run_full_batch(instance, {"paths": paths, "tts": tts})
    log.unlink()

    result, out = preview(paths, tts, instance, name="siobhan", pronunciation="shee-VAWN")
    assert result.success and out["key"] == "siobhan" and out["name"] == "Siobhán"
    assert out["tts_calls"] == len(out["stems"]) == name_segments(paths) == len(logged(log))
    for row in out["stems"]:
        assert Path(row["path"]).is_file() and Path(row["path"]).parent.name == row["signature"]
        assert row["say"] == [["Siobhán", "shee-VAWN"]]
    assert not result.get_asset_materialization_events()  # a preview records no asset
    # adopting the tried respelling costs nothing more: the batch finds the preview's stems
    log.unlink()
    write_names(paths, [(n, "shee-VAWN" if n == "Siobhán" else p) for n, p in NAMES])
    after = run_full_batch(instance, {"paths": paths, "tts": tts})
    assert after.tts_calls == 0 and not log.exists() and after.messages_written > 0

    again = preview(paths, tts, instance, name="siobhan", pronunciation="")[1]  # the dataset's own, already stored
    assert again["tts_calls"] == 0 and {r["signature"] for r in again["stems"]} == {r["signature"] for r in out["stems"]}


def test_preview_takes_a_new_name_and_refuses_bad_input(said_project, tmp_path):
    paths = said_project
    tts = SayCountingTTS(log_path=str(tmp_path / "calls.jsonl"))
    instance = dg.DagsterInstance.ephemeral()
    result, out = preview(paths, tts, instance, name="Niamh", pronunciation="NEEV", template="followup-en")
    assert result.success and out["key"] is None and len(out["stems"]) == 1 and out["stems"][0]["text"].count("Niamh") == 1
    for name, pron, says in (
        ("../../etc/passwd", "NEEV", "name refused (path_like)"),
        ("=cmd()", "NEEV", "name refused (formula_injection)"),
        ("Niamh", "NEEV<", "pronunciation refused (bad_respelling)"),
    ):
        result, _ = preview(paths, tts, instance, name=name, pronunciation=pron)
        assert not result.success and says in failure(result)
    assert not (tmp_path / "calls.jsonl").read_text().count("etc")


def failure(result) -> str:
    return " ".join(e.event_specific_data.error.message for e in result.all_events if e.event_type_value == "STEP_FAILURE")


# ------------------------------------------------------------------------------ uploads


def test_an_upload_with_a_bad_pronunciation_is_refused_with_the_row():
    from hybrid_audio_dagster.core.datasets.files import validate

    ok = validate("name,Pronunciation\nSiobhán,shi-VAWN\nJohn,\n".encode(), filename="names_new.csv")
    assert ok.report.ok and ok.ingested.result.items[0].pronunciation == "shi-VAWN"
    bad = validate("name;pronunciation\nSiobhán;shi-VAWN\nZoë;ZOH ee 3\n".encode(), filename="names_new.csv")
    assert not bad.report.ok and "bad_respelling" in bad.report.problem_message
    (reject,) = bad.report.rejects
    assert reject.row == 3 and "'3' is not allowed" in reject.message
    two = validate(b"name,pronunciation,ipa\nZoe,ZOH-ee,zoi\n", filename="names_new.csv")
    assert not two.report.ok and "several pronunciation columns" in two.report.problem_message
    as_json = validate(json.dumps([{"name": "Zoë", "ipa": "ˈzoʊ.i"}, {"name": "Ana"}]).encode(), filename="names.json")
    assert as_json.report.ok and as_json.ingested.result.items[0].pronunciation == "/ˈzoʊ.i/"


def test_cartesia_dictionary_errors_are_typed_and_never_hold_the_key():
    from hybrid_audio_dagster.core.tts.cartesia.client import CartesiaClient
    from hybrid_audio_dagster.core.tts.cartesia.config import CartesiaConfig
    from hybrid_audio_dagster.core.tts.cartesia.errors import CartesiaAuthError, CartesiaNotFoundError
    from testkit.cartesia_server import FakeCartesia

    key, wrong = "sk_car_dict_key_0123456789abcdef", "sk_car_WRONG_dict_key_987654321"
    say = (Say("Siobhán", "shi-VAWN"),)
    with FakeCartesia(key, echo_key_in_errors=True) as server:
        with CartesiaClient(CartesiaConfig(base_url=server.base_url, max_retries=0), wrong) as client:
            with pytest.raises(CartesiaAuthError) as err:
                client.prepare_pronunciations(say)
            assert wrong not in str(err.value) and wrong not in repr(err.value.__dict__)
        pinned = CartesiaConfig(base_url=server.base_url, max_retries=0, pronunciation_dict_id="pdict_gone")
        with CartesiaClient(pinned, key) as client:
            assert client.pronunciation_contract(client.contract(EN)).pronunciation == "cartesia-dict:pdict_gone"
            with pytest.raises(CartesiaNotFoundError):
                client.synthesize("Hey Siobhán,", EN, say=say)
        assert not server.tts_requests  # nothing billed without the dictionary
        with CartesiaClient(CartesiaConfig(base_url=server.base_url), key) as client:
            first = client.prepare_pronunciations(say)
            again = client.prepare_pronunciations(say)
            assert first["created"] and first["version"] == again["version"] and again["changed"] == 0
            calls = len(server.requests)
            client.synthesize("Hey Siobhán,", EN, say=say)
            assert len(server.requests) == calls + 1  # in step: only the synthesis
