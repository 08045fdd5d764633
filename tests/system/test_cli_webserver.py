"""Every ``hybrid-audio`` command against a real ``dagster dev`` on a free loopback port.

One webserver for the module: a temp ``DAGSTER_HOME`` and project, ``TTS_ENGINE=cartesia``
against the local FakeCartesia (a fake key that must never show up in a log or metadata).
The CLI runs in-process (``main([...])``) and speaks to it only over HTTP; the tests then
check the files it reports: they exist and verify bit-exactly.

Tests run in file order and share the instance: the dry run is the first thing the fresh
instance sees, the batch right after it.
"""

import hashlib
import json
import os
import sqlite3
import time
import zlib
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.cli import main as cli
from hybrid_audio_dagster.core import audit
from hybrid_audio_dagster.core.messages.manifest import manifest_path, read_manifest
from hybrid_audio_dagster.defs.messages.checks import verify_partition
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from testkit.cartesia_server import FakeCartesia
from testkit.gcs_emulator import GCSEmulator
from testkit.project import make_project
from testkit.servers import loaded_locations, start_dagster_dev, wait_until

ROOT = Path(__file__).resolve().parents[2]
FAKE_KEY = "sk_car_FAKE_cli_audit_7f3a9c1e5b"
BUCKET = "hybrid-audio-cli"
NAMES = ["John", "Maria", "Zoë"]
DEVELOPERS = ["Wyndham", "Hilton Grand Vacations"]
# runs are dequeued every second, not every 5 (the default): the tests wait for ~20 runs
FAST_QUEUE = "\nrun_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n  config:\n    dequeue_interval_seconds: 1\n"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_web")
    home, root = tmp / "home", tmp / "root"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text() + FAST_QUEUE)
    paths = make_project(root, NAMES, DEVELOPERS)
    fake = FakeCartesia(FAKE_KEY).start()
    gcs = GCSEmulator(tmp / "gcs", default_bucket=BUCKET)
    gcs.start()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "HYBRID_AUDIO_ROOT": str(root),
        "PYTHONPATH": str(ROOT),
        "TTS_ENGINE": "cartesia",
        "CARTESIA_BASE_URL": fake.base_url,
        "CARTESIA_API_KEY": FAKE_KEY,
        "HYBRID_AUDIO_GCS_BUCKET": BUCKET,
        "STORAGE_EMULATOR_HOST": gcs.url,
    }
    server, url = start_dagster_dev(env, ROOT / "workspace.yaml", tmp)

    def alive() -> None:
        assert server.alive(), f"dagster dev exited:\n{server.log_tail()}"

    try:
        entries = wait_until(lambda: loaded_locations(url), timeout_s=120, what="the code location to load", alive=alive)
        yield {"url": url, "paths": paths, "home": home, "fake": fake, "tmp": tmp, "locations": entries}
    finally:
        server.stop()
        fake.stop()
        gcs.stop()


def run(web, capsys, *args: str) -> tuple[int, dict | str]:
    """``hybrid-audio --url URL --json ARGS``: (exit code, parsed JSON or stderr)."""
    code = cli(["--url", web["url"], "--json", *args])
    captured = capsys.readouterr()
    try:
        return code, json.loads(captured.out)
    except ValueError:
        return code, captured.out + captured.err


def measured(capsys, line: str) -> None:
    """A number the README quotes, shown with ``-s`` (outside the captured CLI output)."""
    with capsys.disabled():
        print(f"\n[measured] {line}")


def chars_billed(fake: FakeCartesia, since: int = 0) -> int:
    return sum(len(r.json["transcript"]) for r in fake.tts_requests[since:] if r.status == 200)


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


def _strings_in_sqlite(path: Path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for (table,) in con.execute("select name from sqlite_master where type='table'"):
            for row in con.execute(f'select * from "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        try:
                            value = zlib.decompress(value)
                        except zlib.error:
                            pass
                        yield value.decode("utf-8", "replace")
                    elif isinstance(value, str):
                        yield value
    finally:
        con.close()


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


def test_audit_log_is_json_lines_and_never_holds_the_key(web, capsys):
    paths: ProjectPaths = web["paths"]
    events = list(audit.read(paths.logs))  # raises on a line that is not JSON
    kinds = {e["event"] for e in events}
    assert {
        "tts_call",
        "stems_run",
        "forced_regeneration",
        "stems_invalidated",
        "dataset_ingested",
        "dataset_deleted",
        "rotation_advance",
        "erase",
    } <= kinds, kinds
    calls = [e for e in events if e["event"] == "tts_call"]
    assert all(e["engine"] == "cartesia" and e["run_id"] and e["trigger"] == "cli" and e["latency_ms"] >= 0 for e in calls)
    assert sum(e["chars"] for e in calls if not e["hit"]) == chars_billed(web["fake"])
    # the key: in no log line, no file of the project or the Dagster home, no database value
    needle = FAKE_KEY
    for folder in (paths.base, web["home"]):
        for f in folder.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                assert needle.encode() not in data, f
                if f.suffix == ".db":
                    assert not any(needle in s for s in _strings_in_sqlite(f)), f
    with dg.DagsterInstance.from_config(str(web["home"])) as instance:
        for record in instance.get_run_records():
            for entry in instance.all_logs(record.dagster_run.run_id):
                assert needle not in str(entry), record.dagster_run.run_id
    assert web["fake"].tts_requests and all(r.auth_ok for r in web["fake"].tts_requests)
