"""Fast tests of the CLI's pieces and the features under it (no webserver): the audit log,
stem tombstones, headers, close-match refusals, the webserver-down line, the timing picture's
geometry against the manifest timeline."""

import json
import socket
import zlib

import dagster as dg
import numpy as np
import pytest

from hybrid_audio_dagster.cli import main as cli
from hybrid_audio_dagster.cli.client import RemoteError, parse_headers
from hybrid_audio_dagster.core import audit
from hybrid_audio_dagster.core.messages.manifest import manifest_path, read_manifest
from hybrid_audio_dagster.core.messages.picture import STRIP_META, TIMING_META, picture_of_row
from hybrid_audio_dagster.core.stems.identity import stem_signature
from hybrid_audio_dagster.core.stems.store import StemStore
from hybrid_audio_dagster.core.templates import load_templates
from hybrid_audio_dagster.defs.resources.tts import OfflineTTSResource
from hybrid_audio_dagster.runner.batch import run_full_batch
from testkit.project import make_project


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_units")
    paths = make_project(root, ["John", "Maria"], ["Wyndham"])
    resources = {"paths": paths, "tts": OfflineTTSResource()}
    try:  # the GCS colleague's resource, where the code location requires it
        from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource

        resources["gcs"] = DeliveryResource()
    except ImportError:  # pragma: no cover
        pass
    instance = dg.DagsterInstance.ephemeral()
    run_full_batch(instance, resources)
    return paths, instance


def test_webserver_down_is_one_line_and_exit_3(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert cli(["--url", url, "cache", "summary"]) == 3
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Dagster webserver" in lines[0] and "make ui" in lines[0], captured
    assert cli(["--url", url, "--json", "batch", "--dry-run"]) == 3
    body = json.loads(capsys.readouterr().out)
    assert body["ok"] is False and body["exit_code"] == 3


def test_bad_input_is_refused_before_any_request(capsys):
    assert cli(["--url", f"http://127.0.0.1:{free_port()}", "cache", "invalidate", "xyz"]) == 2
    assert "not a stem signature" in capsys.readouterr().err
    url = f"http://127.0.0.1:{free_port()}"
    assert cli(["--url", url, "generate", "name", "Siobhán", "--pronunciation", "shi_VAWN"]) == 2
    err = capsys.readouterr().err
    assert "bad_respelling" in err and "'_' is not allowed" in err
    assert cli(["--url", url, "generate", "name", "Siobhán", "-p", "/ʃɪ🙂/"]) == 2
    assert "bad_ipa" in capsys.readouterr().err
    assert cli(["--url", url, "generate", "name", "Siobhán", "-p", "shi-VAWN", "--force"]) == 2
    assert cli(["--url", "ftp://nowhere", "cache", "summary"]) == 2


def test_headers_from_options_and_environment():
    assert parse_headers(["X-Token: abc", "Dagster-Cloud-Api-Token:  t0k "], "A: 1; B: 2") == {
        "A": "1",
        "B": "2",
        "X-Token": "abc",
        "Dagster-Cloud-Api-Token": "t0k",
    }
    assert parse_headers([], '{"Authorization": "Bearer x"}') == {"Authorization": "Bearer x"}
    with pytest.raises(RemoteError):
        parse_headers(["no colon"])


def test_audit_lines_are_json_rotated_and_redacted(tmp_path):
    secret = "sk_car_SECRET_1234567890"
    for i in range(400):
        audit.record(
            tmp_path,
            "tts_call",
            run_id=f"r{i}",
            trigger="cli",
            redact=[secret],
            max_bytes=8_000,
            backups=2,
            engine="cartesia",
            chars=i,
            note=f"header {secret}",
        )
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"], files
    assert all(p.stat().st_size <= 8_000 + 300 for p in tmp_path.iterdir())
    events = list(audit.read(tmp_path))
    assert events and all(e["event"] == "tts_call" and e["trigger"] == "cli" and e["ts"] for e in events)
    assert [e["chars"] for e in events] == sorted(e["chars"] for e in events)  # oldest file first
    assert secret not in "".join(p.read_text() for p in tmp_path.iterdir())


def test_tombstone_makes_exactly_that_stem_a_miss_until_it_is_made_again(project):
    paths, _ = project
    store, tts = StemStore(paths.stems), OfflineTTSResource()
    tpl = load_templates(paths.templates)["followup-en"]
    voice = tpl.voice_settings()
    contract = tts.contract(voice)
    text = tpl.segments[0].render(name="John")
    sig = stem_signature(text, contract)
    others = [(e, s) for e, s in store.signatures() if s != sig]
    before = store.find(sig, contract.engine)
    assert before is not None and store.verify(before)
    assert store.invalidate(contract.engine, sig) == 1
    assert store.find(sig, contract.engine) is None and not store.verify(before)
    assert all(store.find(s, e) is not None for e, s in others[:5])
    calls = []
    outcome = store.obtain(text, voice, tts, contract=contract, on_tts=calls.append)
    assert not outcome.cache_hit and outcome.chars_sent == len(text)
    assert [(c["hit"], c["chars"], c["ok"]) for c in calls] == [(False, len(text), True)] and "text" not in calls[0]
    assert store.find(sig, contract.engine) == outcome.record  # the new stem is found again
    again = store.obtain(text, voice, tts, contract=contract, on_tts=calls.append)
    assert again.cache_hit and calls[-1]["hit"] is True


def _png_text(png: bytes) -> dict[str, str]:
    out, i = {}, 8
    while i < len(png):
        n = int.from_bytes(png[i : i + 4], "big")
        kind, body = png[i + 4 : i + 8], png[i + 8 : i + 8 + n]
        if kind == b"tEXt":
            k, _, v = body.partition(b"\0")
            out[k.decode()] = v.decode("latin-1")
        elif kind == b"zTXt":
            k, _, v = body.partition(b"\0")
            out[k.decode()] = zlib.decompress(v[1:]).decode("latin-1")
        i += 12 + n
    return out


def test_picture_segment_boundaries_match_the_manifest_timeline(project):
    import io

    from PIL import Image

    paths, _ = project
    row = read_manifest(manifest_path(paths.output, "followup-en", "wyndham"))[0]
    timeline = json.loads(row["timeline"])
    picture = picture_of_row(paths.output, paths.stems, row)
    expected = [{"id": e["segment_id"], "start": e["out_start"], "end": e["out_end"]} for e in timeline["entries"]]
    text = _png_text(picture.png)
    assert json.loads(text[TIMING_META]) == expected == picture.segments
    # the drawn strip: coloured exactly over each segment's frames, white in the pauses
    strip = json.loads(text[STRIP_META])
    img = np.asarray(Image.open(io.BytesIO(picture.png)).convert("RGB")).astype(int)
    row_px = img[strip["y"]]
    scale = (strip["x1"] - strip["x0"]) / strip["frames"]
    white = lambda x: (row_px[int(round(x))] > 245).all()  # noqa: E731
    for seg, nxt in zip(expected, expected[1:]):
        a, b = strip["x0"] + seg["start"] * scale, strip["x0"] + seg["end"] * scale
        assert not white((a + b) / 2), seg
        gap = strip["x0"] + nxt["start"] * scale - b
        if gap >= 4:  # a pause wide enough to see: white between the two blocks
            assert white(b + gap / 2), (seg, nxt)
        assert not white(a + 1.5) and not white(b - 1.5), seg  # the block reaches its boundaries
        if gap >= 4:
            assert white(b + 1.5), seg  # and ends there
