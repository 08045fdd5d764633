"""``datasets list`` answers from the listing the dataset assets recorded while nothing that
adds or removes dataset files ran after it; a delete (``delete_upload_job``) or an upload
(``ingest_job``) created after the record makes it ask the reading run. The webserver is the
fake in ``fake_webserver`` (the real one: tests/system/test_cli_reads.py)."""

import json

import pytest

from hybrid_audio_dagster.cli import main as cli
from tests.cli.fake_webserver import FakeWebserver, Outcome

URL = "http://127.0.0.1:9"  # never reached: the fake answers
SEED = {"kind": "names", "name": "names.csv", "source": "seed", "size": 10}
UPLOAD = {"kind": "names", "name": "names/20261201T000000000000Z-extra.csv", "source": "upload", "size": 20}
RECORDED_AT = 1_000_000.0  # ms since the epoch: long before any run the test launches


def _admin(config: dict) -> Outcome:
    action = config["ops"]["datasets_admin"]["config"]["action"]
    if action == "list":
        return Outcome(step="datasets_admin", output={"datasets": [SEED]})  # the upload is gone
    report = {"filename": "names-x.csv", "status": "accepted", "role": "names", "problem": None}
    return Outcome(step="datasets_admin", output={"report": report, "items": [], "total_items": 0, "rejects": []})


@pytest.fixture
def web(monkeypatch):
    return FakeWebserver(
        jobs={
            "datasets_admin_job": _admin,
            "delete_upload_job": lambda c: Outcome(step="delete_upload", output={"deleted": UPLOAD["name"], "path": "/x"}),
        },
        records={
            "names_dataset": (RECORDED_AT, {"listing": [SEED, UPLOAD]}),
            "developers_dataset": (RECORDED_AT, {"listing": []}),
            "suppression": (RECORDED_AT, {"listing": []}),
        },
    ).install(monkeypatch)


def _list(capsys) -> list[dict]:
    assert cli(["--url", URL, "--json", "datasets", "list"]) == 0
    return json.loads(capsys.readouterr().out)["datasets"]


def test_list_answers_from_the_record_until_a_delete_runs_after_it(web, capsys, tmp_path):
    assert _list(capsys) == [SEED, UPLOAD] and not web.launches  # the record, no run
    small = tmp_path / "names-x.csv"
    small.write_text("name\nAna\n")
    assert cli(["--url", URL, "--json", "datasets", "preview", str(small)]) == 0  # a reading run of the admin job
    capsys.readouterr()
    assert _list(capsys) == [SEED, UPLOAD] and len(web.launched("datasets_admin_job")) == 1  # still the record
    assert cli(["--url", URL, "--json", "datasets", "delete", UPLOAD["name"], "--no-refresh"]) == 0
    capsys.readouterr()
    assert _list(capsys) == [SEED]  # the record is older than the delete: the reading run answers
    assert [launch["job"] for launch in web.launches][-1] == "datasets_admin_job"


def test_an_upload_newer_than_the_record_makes_list_ask_a_run(web, capsys):
    web.launches.append({"job": "ingest_job", "run_config": {}, "run_id": "run-0", "created": RECORDED_AT / 1000 + 1, "tags": {}})
    assert _list(capsys) == [SEED] and len(web.launched("datasets_admin_job")) == 1
