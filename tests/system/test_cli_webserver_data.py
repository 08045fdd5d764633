"""The dataset, bucket and pronunciation commands of ``hybrid-audio`` against a real
``dagster dev`` of their own (tests/support/webserver.py), after one batch through it; the rest
of the CLI is in test_cli_webserver.py, on another server, so the two files run side by side.
"""

import hashlib
from pathlib import Path

import pytest

from hybrid_audio_dagster.cli import main as cli
from tests.support.webserver import BUCKET, DEVELOPERS, NAMES, assert_audit_log_whole_and_no_key, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module", autouse=True)
def campaign(web):
    """One batch through the webserver: every message written, the rosters registered."""
    assert cli(["--url", web["url"], "--json", "batch"]) == 0


def test_the_batch_wrote_every_message(web, capsys):
    code, plan = run(web, capsys, "batch", "--dry-run")
    assert code == 0 and plan["chars"] == 0 and plan["messages_to_write"] == 0
    assert plan["messages_to_skip"] == len(NAMES) * len(DEVELOPERS) * 2


def test_datasets_upload_preview_list_delete(web, capsys):
    tmp = web["tmp"]
    good = tmp / "extra.csv"
    good.write_text("name\nAna\nLuis\n", encoding="utf-8")
    bad = tmp / "names-bad.csv"
    bad.write_text("name\n=HYPERLINK(1)\n12345\nPia\n", encoding="utf-8")

    code, preview = run(web, capsys, "datasets", "preview", str(bad))  # an upload of it would be refused: so is the preview
    assert code == 2 and not preview["ok"] and preview["problem"] == "rows_rejected" and "rows_rejected" in preview["error"]
    assert preview["total_items"] == 1 and len(preview["rejects"]) == 2
    unnamed = tmp / "small_names.csv"
    unnamed.write_text("name\nAna\n", encoding="utf-8")
    code, preview = run(web, capsys, "datasets", "preview", str(unnamed))
    assert code == 2 and not preview["ok"] and "cannot tell from the file name" in preview["error"], preview
    code, err = run(web, capsys, "datasets", "upload", str(bad))
    assert code == 2 and not err["ok"] and "rows_rejected" in err["error"], err
    code, up = run(web, capsys, "datasets", "upload", str(good), "--role", "names")
    assert code == 0, up
    assert up["status"] == "stored" and sorted(up["new_keys"]) == ["ana", "luis"]
    code, listed = run(web, capsys, "datasets", "list")
    uploads = [d for d in listed["datasets"] if d["source"] == "upload"]
    assert code == 0 and [d["name"] for d in uploads] == [up["stored_as"]]
    code, err = run(web, capsys, "datasets", "delete", "../names.csv")
    assert code == 2 and "refused" in err["error"]
    stored = web["paths"].dataset_store / up["stored_as"]
    assert stored.is_file()
    code, out = run(web, capsys, "datasets", "delete", up["stored_as"])
    assert code == 0 and out["deleted"] == up["stored_as"] and out["refresh_run"] and not stored.exists()
    code, err = run(web, capsys, "assemble", "ana", "wyndham")  # the rosters were rebuilt without it
    assert code == 2 and "unknown name 'ana'" in err["error"]


def test_datasets_by_reference_from_the_inbox(web, capsys):
    """A list placed in the server's inbox is previewed and ingested there (run config: its name and hash)."""
    paths = web["paths"]
    paths.inbox.mkdir(parents=True, exist_ok=True)
    (paths.inbox / "people.csv").write_text("name\nIngrid\nOlaf\n", encoding="utf-8")
    code, out = run(web, capsys, "datasets", "preview", "--from-inbox", "people.csv", "--role", "names")
    assert code == 0 and out["total_items"] == 2 and out["inbox"]["role"] is None, out
    code, err = run(web, capsys, "datasets", "upload", "--from-inbox", "people.csv")
    assert code == 2 and "--role" in err["error"], err
    code, err = run(web, capsys, "datasets", "upload", "--from-inbox", "../names.csv")
    assert code == 2 and "not a plain file name" in err["error"], err
    code, up = run(web, capsys, "datasets", "upload", "--from-inbox", "people.csv", "--role", "names")
    assert code == 0 and up["by_reference"] and up["status"] == "stored" and sorted(up["new_keys"]) == ["ingrid", "olaf"], up
    assert not (paths.inbox / "people.csv").exists() and (paths.dataset_store / up["stored_as"]).is_file()
    code, out = run(web, capsys, "datasets", "delete", up["stored_as"])
    assert code == 0, out


def test_bucket_consistency_repair_list_check(web, capsys):
    code, out = run(web, capsys, "bucket", "repair", "--dry-run")
    assert code == 0 and out["dry_run"], out
    code, out = run(web, capsys, "bucket", "repair")
    assert code == 0 and not out["dry_run"], out
    code, out = run(web, capsys, "bucket", "consistency")
    assert code == 0 and out["status"] == "clean", out
    code, listed = run(web, capsys, "bucket", "list", "--prefix", "stems/")
    assert code == 0 and listed["count"] >= 18 and all(o["uri"].startswith(f"gs://{BUCKET}/") for o in listed["objects"])
    code, out = run(web, capsys, "assemble", "john", "wyndham")  # the local path, and the delivered copy's gs:// URI
    assert code == 0 and out["uri"] == f"gs://{BUCKET}/hybrid-audio/output/followup-en/wyndham/john.wav", out
    stem = run(web, capsys, "cache", "list", "--kind", "scripts")[1]["stems"][0]
    code, checked = run(web, capsys, "bucket", "check", stem["signature"][:12])
    assert code == 0 and checked["in_sync"] and checked["objects"][0]["uri"].startswith(f"gs://{BUCKET}/")


def test_generate_name_previews_a_pronunciation(web, capsys):
    """`generate name --pronunciation`: the name's stem said that way, through Cartesia's
    dictionary, stored by signature; the second preview is a cache hit; a bad one is refused."""
    fake = web["fake"]
    billed = len(fake.tts_requests)
    code, out = run(web, capsys, "generate", "name", "zoe", "--pronunciation", "ZOH-ee", "--template", "followup-en")
    assert code == 0, out
    (stem,) = out["stems"]
    assert stem["say"] == [["Zoë", "ZOH-ee"]] and out["tts_calls"] == 1
    assert Path(stem["path"]).is_relative_to(web["paths"].stems)
    assert hashlib.sha256(Path(stem["path"]).read_bytes()).hexdigest() == stem["sha256"]
    assert len(fake.tts_requests) == billed + 1
    request = fake.tts_requests[-1].json
    (d,) = fake.dicts.dicts.values()
    assert request["pronunciation_dict_id"] == d["id"] and {"text": "Zoë", "pronunciation": "ZOH-ee"} in d["items"]
    code, again = run(web, capsys, "generate", "name", "zoe", "--pronunciation", "ZOH-ee", "--template", "followup-en")
    assert code == 0 and again["tts_calls"] == 0 and again["stems"][0]["signature"] == stem["signature"]
    code, err = run(web, capsys, "generate", "name", "zoe", "--pronunciation", "zoh_ee")
    assert code == 2 and "bad_respelling" in err["error"] and len(fake.tts_requests) == billed + 1


def test_audit_log_is_json_lines_and_never_holds_the_key(web):
    assert_audit_log_whole_and_no_key(web, {"tts_call", "stems_run", "dataset_ingested", "dataset_deleted"})
