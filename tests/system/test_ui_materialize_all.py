"""The Dagster UI as a newcomer meets it: *Materialize all* on the lineage page, defaults
accepted, makes the campaign (fresh project) and costs nothing (warm project).

A real ``dagster dev`` (webserver and daemon) on a free loopback port, a temp
``DAGSTER_HOME`` and project, ``TTS_ENGINE=cartesia`` against the loopback FakeCartesia
(its request log counts the TTS calls), headless Debian Chromium through Playwright clicking
the real buttons. Tests run in file order and share the instance: fresh, then warm.
"""

import os
import time
from pathlib import Path

import pytest

from hybrid_audio_dagster.core.messages.manifest import manifest_path, read_manifest
from hybrid_audio_dagster.core.rotation.campaign import rotation_dir
from hybrid_audio_dagster.defs.messages.checks import verify_partition
from testkit.cartesia_server import FakeCartesia
from testkit.project import make_project
from testkit.servers import graphql, loaded_locations, runs_by_tags, start_dagster_dev, wait_until

ROOT = Path(__file__).resolve().parents[2]
FAKE_KEY = "sk_car_FAKE_ui_materialize_all_4e1d"
NAMES = ["John", "Maria", "Zoë"]
DEVELOPERS = ["Wyndham", "Hilton Grand Vacations"]
TEMPLATES = ["followup-en", "seguimiento-es"]
MESSAGES = len(NAMES) * len(DEVELOPERS) * len(TEMPLATES)
CHROMIUM = Path("/usr/bin/chromium")
BACKFILLS = "{ partitionBackfillsOrError { ... on PartitionBackfills { results { id status } } } }"
RUNS = "{ runsOrError { ... on Runs { results { runId jobName status tags { key value } } } } }"
ADVANCES = """{ assetOrError(assetKey: {path: ["rotation_advance"]}) { ... on Asset {
  assetMaterializations(limit: 5) { runId } } } }"""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (Debian package `chromium`; .ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api")
    tmp = tmp_path_factory.mktemp("ui_materialize_all")
    home, root = tmp / "home", tmp / "root"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())  # runs dequeued every second
    paths = make_project(root, NAMES, DEVELOPERS)
    fake = FakeCartesia(FAKE_KEY).start()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "HYBRID_AUDIO_ROOT": str(root),
        "PYTHONPATH": str(ROOT),
        "TTS_ENGINE": "cartesia",
        "CARTESIA_BASE_URL": fake.base_url,
        "CARTESIA_API_KEY": FAKE_KEY,
        "HYBRID_AUDIO_PIPELINE_SENSOR_S": "2",
    }
    env.pop("HYBRID_AUDIO_GCS_BUCKET", None)
    server, url = start_dagster_dev(env, ROOT / "workspace.yaml", tmp)

    def alive() -> None:
        assert server.alive(), f"dagster dev exited:\n{server.log_tail()}"

    try:
        wait_until(lambda: loaded_locations(url), timeout_s=180, what="the code location to load", alive=alive)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
            )
            try:
                yield {"url": url, "paths": paths, "fake": fake, "tmp": tmp, "browser": browser, "pw": playwright, "alive": alive}
            finally:
                browser.close()
    finally:
        server.stop()
        fake.stop()


def click_materialize_all(ui, shot: str) -> tuple[str, str]:
    """Open the lineage page, click *Materialize all*, accept the defaults, launch: (the
    dialog's text, the new backfill's id)."""
    before = {b["id"] for b in graphql(ui["url"], BACKFILLS)["partitionBackfillsOrError"]["results"]}
    page = ui["browser"].new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{ui['url']}/asset-groups", wait_until="networkidle", timeout=90_000)
        try:  # the first visit's "Join the Dagster community" modal
            page.get_by_role("button", name="Skip").first.click(timeout=8_000)
        except ui["pw"].TimeoutError:
            pass
        page.get_by_role("button", name="Materialize all").first.click(timeout=60_000)
        dialog = page.locator("[role=dialog]", has_text="Launch runs to materialize").first
        dialog.get_by_text("Partition selection").first.wait_for(timeout=60_000)
        time.sleep(1)  # the partition section settles once the assets' health has loaded
        text = dialog.inner_text()
        page.screenshot(path=str(ui["tmp"] / shot))
        dialog.get_by_role("button", name="Launch backfill").click(timeout=30_000)
        new = wait_until(
            lambda: {b["id"] for b in graphql(ui["url"], BACKFILLS)["partitionBackfillsOrError"]["results"]} - before,
            timeout_s=60,
            what="the backfill to be launched",
            alive=ui["alive"],
        )
    finally:
        page.close()
    [backfill] = new
    return text, backfill


def backfill_done(ui, backfill: str) -> bool:
    [status] = [b["status"] for b in graphql(ui["url"], BACKFILLS)["partitionBackfillsOrError"]["results"] if b["id"] == backfill]
    assert status not in ("FAILED", "FAILING", "COMPLETED_FAILED", "CANCELED"), status
    return status in ("COMPLETED", "COMPLETED_SUCCESS")


def all_runs_finished(ui) -> list[dict]:
    runs = graphql(ui["url"], RUNS)["runsOrError"]["results"]
    failed = [r for r in runs if r["status"] in ("FAILURE", "CANCELED")]
    assert not failed, failed
    return runs if all(r["status"] == "SUCCESS" for r in runs) else []


def rotation_state(paths) -> dict[str, bytes]:
    """Every file of the rotation's state and its audit trail, by path (not the empty lock files a
    reader of the state leaves: rotation_outlook reads it under its lock)."""
    files = [f for f in rotation_dir(paths).rglob("*") if f.is_file() and f.suffix != ".lock"] if rotation_dir(paths).exists() else []
    files += [f for f in (paths.logs / "rotation_audit.jsonl",) if f.exists()]
    return {str(f): f.read_bytes() for f in files}


def verified_messages(paths) -> int:
    """Every message of every template × developer partition verifies bit-exactly; how many."""
    total = 0
    for template in TEMPLATES:
        folders = sorted(p.name for p in (paths.output / template).iterdir() if p.is_dir())
        assert len(folders) == len(DEVELOPERS), folders
        for developer in folders:
            checked, problems = verify_partition(paths, template, developer)
            assert problems == [] and checked == len(NAMES), (template, developer, problems)
            assert len(read_manifest(manifest_path(paths.output, template, developer))) == len(NAMES)
            total += checked
    return total


def measured(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n[measured] {line}")


def test_materialize_all_on_a_fresh_project_makes_every_message(ui, capsys):
    paths, fake = ui["paths"], ui["fake"]
    rotation_before = rotation_state(paths)
    started = time.perf_counter()
    text, backfill = click_materialize_all(ui, "fresh_dialog.png")
    # no upload to choose, no rotation hand-out in the selection: every partition, one click
    assert "Launch runs to materialize 13 assets" in text, text
    assert "All partitions" in text and "dataset_uploads" not in text, text

    wait_until(lambda: backfill_done(ui, backfill), timeout_s=300, interval_s=2, what="the backfill", alive=ui["alive"])
    # the backfill made the datasets (its partitioned targets were empty); pipeline_sensor makes the rest
    wait_until(
        lambda: (
            [r for r in runs_by_tags(ui["url"], {"hybrid_audio/pipeline": f"ui-{backfill}"}) if r["jobName"] == "messages_job"]
            and all_runs_finished(ui)
        ),
        timeout_s=600,
        interval_s=2,
        what="the stems and messages after the backfill",
        alive=ui["alive"],
    )
    elapsed = time.perf_counter() - started
    runs = all_runs_finished(ui)
    assert verified_messages(paths) == MESSAGES
    tts_calls = len([r for r in fake.tts_requests if r.status == 200])
    assert tts_calls > 0
    # the rotation: nothing handed out, its state untouched, no advance recorded
    assert rotation_state(paths) == rotation_before
    assert not [r for r in runs if r["jobName"] == "rotation_advance_job"]
    assert graphql(ui["url"], ADVANCES)["assetOrError"].get("assetMaterializations", []) == []
    measured(capsys, f"fresh Materialize all: {len(runs)} runs, {tts_calls} TTS calls, {MESSAGES} messages, {elapsed:.1f}s")


def test_materialize_all_on_a_warm_project_makes_no_tts_call_and_rewrites_nothing(ui, capsys):
    paths, fake = ui["paths"], ui["fake"]
    calls_before = len(fake.tts_requests)
    wavs = sorted(paths.output.rglob("*.wav"))
    assert len(wavs) == MESSAGES
    mtimes = [w.stat().st_mtime_ns for w in wavs]
    rotation_before = rotation_state(paths)
    runs_before = len(graphql(ui["url"], RUNS)["runsOrError"]["results"])

    started = time.perf_counter()
    text, backfill = click_materialize_all(ui, "warm_dialog.png")
    assert "Launch runs to materialize 13 assets" in text and "All partitions" in text, text
    wait_until(lambda: backfill_done(ui, backfill), timeout_s=600, interval_s=2, what="the backfill", alive=ui["alive"])
    wait_until(lambda: all_runs_finished(ui), timeout_s=300, interval_s=2, what="every run to finish", alive=ui["alive"])
    elapsed = time.perf_counter() - started
    time.sleep(6)  # three pipeline_sensor intervals: it must ask for nothing more
    runs = all_runs_finished(ui)
    assert runs, "a run started after the backfill"
    assert not runs_by_tags(ui["url"], {"hybrid_audio/pipeline": f"ui-{backfill}"})

    assert len(fake.tts_requests) == calls_before  # 0 TTS calls
    assert [w.stat().st_mtime_ns for w in wavs] == mtimes and sorted(paths.output.rglob("*.wav")) == wavs
    assert verified_messages(paths) == MESSAGES
    assert rotation_state(paths) == rotation_before
    measured(capsys, f"warm Materialize all: {len(runs) - runs_before} runs, 0 TTS calls, 0 messages rewritten, {elapsed:.1f}s")
