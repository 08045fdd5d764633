"""Every ``hybrid-audio`` command of a campaign's life against a real ``dagster dev`` (one for
this module, tests/support/webserver.py): the dry run, the batch, one message, the rotation,
stems, the cache, the timing picture in Chromium, an erase; the tests then check the files it
reports: they exist and verify bit-exactly. The dataset and bucket commands have their own
server in test_cli_webserver_data.py.

Tests run in file order and share the instance: the dry run is the first thing the fresh
instance sees, the batch right after it.
"""

import hashlib
import json
import time
from pathlib import Path

import pytest

from hybrid_audio_dagster.core.messages.manifest import manifest_path, read_manifest
from hybrid_audio_dagster.defs.messages.checks import verify_partition
from tests.support.webserver import DEVELOPERS, NAMES, assert_audit_log_whole_and_no_key, chars_billed, measured, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_dagster_dev_loads_the_code_location(web, capsys):
    [entry] = web["locations"]
    assert entry["name"] == "hybrid_audio" and entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
    code, status = run(web, capsys, "status")
    assert code == 0 and status["location"] == "hybrid_audio" and status["loaded"] and status["jobs"] > 10, status


def test_dry_run_reports_exactly_what_the_batch_then_sends(web, capsys):
    code, plan = run(web, capsys, "batch", "--dry-run")
    assert code == 0, plan
    assert plan["dry_run"] and plan["chars"] > 0 and plan["messages_to_write"] == len(NAMES) * len(DEVELOPERS) * 2
    assert not web["fake"].tts_requests, "a dry run must not call the TTS engine"

    started = time.perf_counter()
    code, done = run(web, capsys, "batch")
    measured(capsys, f"cold batch (datasets, 18 stems, 12 messages) end to end: {time.perf_counter() - started:.1f}s")
    assert code == 0, done
    assert done["chars_sent"] == plan["chars"] == chars_billed(web["fake"])
    assert done["tts_calls"] == plan["stems_to_synthesize"]
    assert done["messages_written"] == plan["messages_to_write"]
    assert len(done["stage_runs"]) == 1 + done["stem_runs"] + 1  # datasets, stems, messages: each its own run
    for template in ("followup-en", "seguimiento-es"):
        for dev in ("wyndham", "hilton-grand-vacations"):
            checked, problems = verify_partition(web["paths"], template, dev)
            assert checked == len(NAMES) and not problems, problems

    code, again = run(web, capsys, "batch", "--dry-run", "--template", "followup-en", "--developer", "wyndham")
    assert code == 0 and again["chars"] == 0 and again["messages_to_write"] == 0 and again["messages_to_skip"] == len(NAMES)


def test_assemble_one_message_and_refuse_unknowns(web, capsys):
    paths = web["paths"]
    rows = {r["name_key"]: r for r in read_manifest(manifest_path(paths.output, "followup-en", "wyndham"))}
    target = paths.output / rows["john"]["path"]
    target.unlink()
    others = {k: (paths.output / r["path"]).stat().st_mtime_ns for k, r in rows.items() if k != "john"}
    picture = web["tmp"] / "john.png"

    started = time.perf_counter()
    code, out = run(web, capsys, "assemble", "John", "wyndham", "--template", "followup-en", "--picture", str(picture))
    measured(capsys, f"assemble one message end to end: {time.perf_counter() - started:.1f}s")
    assert code == 0, out
    assert Path(out["path"]) == target and target.is_file() and out["verified"]
    assert abs(out["duration_s"] - rows["john"]["duration_s"]) < 0.01
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert {k: (paths.output / r["path"]).stat().st_mtime_ns for k, r in rows.items() if k != "john"} == others
    assert verify_partition(paths, "followup-en", "wyndham")[1] == []

    code, err = run(web, capsys, "assemble", "jon", "wyndham")
    assert code == 2 and "did you mean 'john'" in err["error"]
    code, err = run(web, capsys, "assemble", "john", "hilton")
    assert code == 2 and "did you mean 'hilton-grand-vacations'" in err["error"]
    code, err = run(web, capsys, "assemble", "john", "hilton-grand-vacations", "--template", "folowup-en")
    assert code == 2 and "unknown template 'folowup-en'" in err["error"] and "followup-en" in err["error"]
    code, err = run(web, capsys, "generate", "developer", "wyndam")
    assert code == 2 and "'wyndham'" in err["error"]


def test_rotation_commands(web, capsys):
    code, streamed = run(web, capsys, "rotation", "stream", "--limit", "3")
    assert code == 0 and len(streamed["pairs"]) == 3
    code, nxt = run(web, capsys, "rotation", "next-pair")
    assert code == 0 and nxt["pair"] == streamed["pairs"][0]
    code, script = run(web, capsys, "rotation", "next-script")
    assert code == 0 and any(nxt["pair"]["name_display"] in s["text"] for s in script["script"])
    code, made = run(web, capsys, "rotation", "generate-pair")
    assert code == 0, made
    assert (made["name"], made["developer"], made["template"]) == (nxt["pair"]["name"], nxt["pair"]["developer"], nxt["pair"]["template"])
    assert Path(made["path"]).is_file() and made["verified"]
    assert verify_partition(web["paths"], made["template"], made["developer"])[1] == []
    code, status = run(web, capsys, "rotation", "status")
    assert code == 0 and status["advances"] == 1 and status["cursor"] == 1


def test_generate_stems(web, capsys):
    paths = web["paths"]
    billed = len(web["fake"].tts_requests)
    for args, kinds in (
        (["name", "maria", "--force"], {"name"}),
        (["developer", "wyndham"], {"developer"}),
        (["combined", "zoe", "hilton-grand-vacations"], {"name", "developer"}),
    ):
        code, out = run(web, capsys, "generate", *args)
        assert code == 0, out
        assert {s["kind"] for s in out["stems"]} == kinds
        for stem in out["stems"]:
            data = Path(stem["path"]).read_bytes()
            assert Path(stem["path"]).is_relative_to(paths.stems) and hashlib.sha256(data).hexdigest() == stem["sha256"]
        if "--force" in args:  # forced: every stem of the name synthesized again (and audited)
            assert len(web["fake"].tts_requests) == billed + len(out["stems"])
            billed = len(web["fake"].tts_requests)
    assert len(web["fake"].tts_requests) == billed  # the others were cache hits


def test_cache_list_summary_invalidate_bulk(web, capsys):
    code, listed = run(web, capsys, "cache", "list", "--kind", "developers")
    assert code == 0 and {s["kind"] for s in listed["stems"]} == {"developers"} and len(listed["stems"]) == 4
    code, summary = run(web, capsys, "cache", "summary")
    assert code == 0 and summary["kinds"]["scripts"]["stems"] == 8 and summary["total"]["stems"] >= 18

    stem = next(s for s in listed["stems"] if s["partition"] == "wyndham" and s["slot"] == "followup-en/brand")
    code, out = run(web, capsys, "cache", "invalidate", stem["signature"][:16])
    assert code == 0 and out["invalidated"][0]["signature"] == stem["signature"]
    code, plan = run(web, capsys, "batch", "--dry-run")
    assert code == 0 and plan["stems_to_synthesize"] == 1 and plan["chars"] == len(stem["text"])
    since = len(web["fake"].tts_requests)
    code, done = run(web, capsys, "batch")
    assert code == 0 and done["tts_calls"] == 1 and done["chars_sent"] == len(stem["text"])
    assert [r.json["transcript"] for r in web["fake"].tts_requests[since:]] == [stem["text"]]

    code, bulk = run(web, capsys, "cache", "bulk")
    assert code == 0 and bulk["tts_calls"] == 0 and bulk["partitions"] == len(NAMES) + len(DEVELOPERS) + 2


def test_picture_and_the_partition_page_in_chromium(web, capsys):
    paths = web["paths"]
    out_png = web["tmp"] / "timing.png"
    code, out = run(web, capsys, "picture", "john", "wyndham", "--out", str(out_png))
    assert code == 0 and out_png.read_bytes().startswith(b"\x89PNG")
    row = next(r for r in read_manifest(manifest_path(paths.output, "followup-en", "wyndham")) if r["name_key"] == "john")
    assert [(e["out_start"], e["out_end"]) for e in out["segments"]] == [
        (e["out_start"], e["out_end"]) for e in json.loads(row["timeline"])["entries"]
    ]

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("no /usr/bin/chromium (Debian package `chromium`; .ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api")
    shot = web["tmp"] / "partition.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium),
            args=[
                "--no-sandbox",
                "--headless",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(
                f"{web['url']}/assets/messages?view=partitions&partition=wyndham%7Cfollowup-en", wait_until="networkidle", timeout=60_000
            )
            page.get_by_text("timing_picture").first.wait_for(timeout=60_000)
            try:  # the first visit's "Join the Dagster community" modal, which shows up a moment later
                page.get_by_role("button", name="Skip").first.click(timeout=8_000)
            except playwright.TimeoutError:
                pass
            # a long Markdown value is one click away in the metadata table
            page.locator("tr", has_text="timing_picture").get_by_text("Show Markdown").first.click(timeout=30_000)
            image = page.locator("img[src^='data:image/png;base64,']").first
            image.wait_for(state="visible", timeout=60_000)
            image.scroll_into_view_if_needed()
            natural = image.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert natural[0] and natural[1] >= 600 and natural[2] >= 200, natural
    assert shot.stat().st_size > 50_000


def test_erase_a_person(web, capsys):
    paths = web["paths"]
    code, out = run(web, capsys, "erase", "maria", "--yes")
    assert code == 0, out
    for template in ("followup-en", "seguimiento-es"):
        assert "maria" not in {r["name_key"] for r in read_manifest(manifest_path(paths.output, template, "wyndham"))}
    code, err = run(web, capsys, "assemble", "maria", "wyndham")
    assert code == 2 and "unknown name 'maria'" in err["error"]


def test_audit_log_is_json_lines_and_never_holds_the_key(web):
    kinds = {"tts_call", "stems_run", "forced_regeneration", "stems_invalidated", "rotation_advance", "erase"}
    assert_audit_log_whole_and_no_key(web, kinds)
