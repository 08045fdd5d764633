"""Every CLI command that validates input: a refusal, here or in the webserver, exits 2 and
prints the reason, in text (one line on stderr) and with --json ("ok": false, the reason in
"error") alike. The webserver is the fake in ``fake_webserver`` (the real one is exercised by
tests/system/test_cli_webserver.py)."""

import base64
import hashlib
import json

import pytest

from hybrid_audio_dagster.cli import main as cli
from tests.cli.fake_webserver import FakeWebserver, Outcome, refusal

URL = "http://127.0.0.1:9"  # never reached: the fake answers
UNKNOWN_ROLE = (
    "cannot tell from the file name whether it holds names or developers; "
    "name it names*.csv / developers*.csv (or brands*) or pass the role explicitly"
)


def _preview_of(config: dict) -> Outcome:
    c = config["ops"]["datasets_admin"]["config"]
    if c["action"] != "preview":
        return Outcome(step="datasets_admin", output={})
    name = c.get("filename") or c.get("inbox_file")
    if not name.startswith("names"):
        report = {"filename": name, "status": "rejected", "role": None, "problem": {"code": "unknown_role", "message": UNKNOWN_ROLE}}
        return Outcome(step="datasets_admin", output={"report": report, "items": [], "total_items": 0, "rejects": []})
    report = {"filename": name, "status": "accepted", "role": "names", "problem": None}
    return Outcome(
        step="datasets_admin", output={"report": report, "items": [{"key": "ana", "display": "Ana"}], "total_items": 1, "rejects": []}
    )


def _admin(config: dict) -> Outcome:
    c = config["ops"]["datasets_admin"]["config"]
    if c.get("inbox_file") and c["inbox_file"] != "names-big.csv":
        return refusal("not_in_inbox", f"no file {c['inbox_file']!r} in the inbox (/srv/hybrid-audio/data/inbox); it holds names-big.csv")
    if c["action"] == "preview":
        return _preview_of(config)
    if c["action"] == "inbox":
        return Outcome(step="datasets_admin", output={"name": "names-big.csv", "size": 5_400_005, "sha256": "ab" * 32, "role": "names"})
    return Outcome(step="datasets_admin", output={"datasets": []})


def _ingest(config: dict) -> Outcome:
    c = config["ops"]["dataset_uploads"]["config"]
    name = c.get("filename") or c.get("inbox_file")
    if "bad" in name:
        return refusal(
            "rows_rejected",
            f"rejected {name!r} (rows_rejected): 2 row(s) failed validation (digits_only, formula_injection); "
            "the inbox refuses a file with invalid rows whole: fix or remove them and drop it again",
        )
    return Outcome(
        materializations=[
            ("dataset_uploads", {"status": "stored", "stored_as": f"names/x-{name}", "rows": 2, "rejected_rows": 0}),
            ("names_dataset", {"new_keys": ["ana", "luis"]}),
        ]
    )


@pytest.fixture
def web(monkeypatch):
    return FakeWebserver(
        jobs={
            "datasets_admin_job": _admin,
            "ingest_job": _ingest,
            "delete_upload_job": lambda c: refusal(
                "refused", f"refused: {c['ops']['delete_upload']['config']['name']!r} contains '..', '.' or an empty component"
            ),
            "stem_preview_job": lambda c: refusal("bad_name", "name refused (formula_injection): starts with '='"),
            "messages_job": lambda c: refusal("unknown_name", "unknown name slug(s) ['john']: not in the names dataset"),
            "message_info_job": lambda c: refusal(
                "no_message", "no message for 'john' in followup-en/wyndham: run `hybrid-audio assemble` first"
            ),
            "batch_plan_job": lambda c: refusal("unknown_item", "unknown in the datasets/templates: {'names': ['maria']}"),
            "invalidate_stems_job": lambda c: refusal("unknown_stem", "nothing invalidated: 'deadbeef' matches no stored stem"),
            "bucket_admin_job": lambda c: refusal("unknown_stem", "'deadbeef': no stored stem match"),
            "erase_name_job": lambda c: refusal(
                "unknown_name", "no such name in the names dataset (give its slug or its text exactly as listed)"
            ),
        }
    ).install(monkeypatch)


def _run(capsys, args: list[str], json_: bool) -> tuple[int, str, dict | None]:
    code = cli(["--url", URL, *(["--json"] if json_ else []), *args])
    captured = capsys.readouterr()
    if json_:
        return code, captured.out, json.loads(captured.out)
    return code, captured.err, None


def _refused(capsys, args: list[str], *needles: str) -> None:
    """Exit 2 and the reason, in text and in JSON."""
    code, err, _ = _run(capsys, args, json_=False)
    assert code == 2, (args, err)
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and all(n in line for n in needles), (args, err)
    code, _, body = _run(capsys, args, json_=True)
    assert code == 2 and body["ok"] is False and body["exit_code"] == 2, (args, body)
    assert all(n in body["error"] for n in needles), (args, body)


# -- refusals from the webserver -------------------------------------------------------------------


def test_preview_of_a_file_the_server_refuses_is_not_a_success(web, capsys, tmp_path):
    small = tmp_path / "small_names.csv"
    small.write_text("name\nAna\n")
    _refused(capsys, ["datasets", "preview", str(small)], "unknown_role", "cannot tell from the file name")
    code, _, body = _run(capsys, ["datasets", "preview", str(small)], json_=True)
    assert body["report"]["status"] == "rejected" and body["problem"] == "unknown_role"  # the report comes along
    ok = tmp_path / "names_ok.csv"
    ok.write_text("name\nAna\n")
    code, out, body = _run(capsys, ["datasets", "preview", str(ok)], json_=True)
    assert code == 0 and body["ok"] is True and body["total_items"] == 1


def test_upload_of_a_rejected_file(web, capsys, tmp_path):
    bad = tmp_path / "names-bad.csv"
    bad.write_text("name\n=HYPERLINK(1)\n12345\nPia\n")
    _refused(capsys, ["datasets", "upload", str(bad)], "rows_rejected", "2 row(s) failed validation")


def test_upload_and_preview_from_the_inbox_refuse_an_unknown_or_unsafe_name(web, capsys):
    _refused(capsys, ["datasets", "upload", "--from-inbox", "names-other.csv"], "no file 'names-other.csv' in the inbox", "names-big.csv")
    _refused(capsys, ["datasets", "preview", "--from-inbox", "names-other.csv"], "no file 'names-other.csv' in the inbox")
    assert not web.launched("ingest_job")


def test_delete_refused(web, capsys):
    _refused(capsys, ["datasets", "delete", "../names.csv"], "refused", "'../names.csv'")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["generate", "name", "John", "--pronunciation", "JON"], "name refused (formula_injection)"),
        (["assemble", "john", "wyndham"], "unknown name slug(s) ['john']"),
        (["picture", "john", "wyndham"], "no message for 'john'"),
        (["batch", "--dry-run"], "unknown in the datasets/templates"),
        (["cache", "invalidate", "deadbeef"], "nothing invalidated"),
        (["bucket", "check", "deadbeef"], "no stored stem match"),
        (["erase", "john", "--yes"], "no such name in the names dataset"),
    ],
)
def test_every_command_exits_2_with_the_servers_reason(web, capsys, args, needle):
    _refused(capsys, args, needle)


# -- refusals before any run ---------------------------------------------------------------------


def test_a_list_too_big_for_run_config_says_how_to_send_it_by_reference(web, capsys, tmp_path):
    big = tmp_path / "big_names.csv"
    big.write_bytes(b"name\n" + b"Alexandriaabcdefg\n" * 300_000)  # ~5.4 MB
    _refused(
        capsys,
        ["datasets", "upload", str(big)],
        f"big_names.csv is {big.stat().st_size} bytes",
        "over the 5242880 bytes",
        "/srv/hybrid-audio/data/inbox",
        "hybrid-audio datasets upload --from-inbox big_names.csv",
    )
    _refused(capsys, ["datasets", "preview", str(big)], "hybrid-audio datasets preview --from-inbox big_names.csv")
    odd = tmp_path / "people.csv"
    odd.write_bytes(big.read_bytes())
    _refused(capsys, ["datasets", "upload", str(odd)], "--from-inbox people.csv --role names|developers")
    assert not web.launches


@pytest.mark.parametrize(
    "args, needle",
    [
        (["datasets", "upload", "small_list.csv"], "no such file"),
        (["datasets", "upload", "--role", "people", "--from-inbox", "names-big.csv"], "unknown role 'people'"),
        (["datasets", "upload"], "give either FILE or --from-inbox NAME"),
        (["generate", "name", "jon"], "did you mean 'john'"),
        (["generate", "developer", "wyndam"], "did you mean 'wyndham'"),
        (["cache", "list", "--kind", "voices"], "unknown kind 'voices'"),
        (["cache", "invalidate", "xyz"], "not a stem signature"),
    ],
)
def test_bad_input_is_refused_before_any_run(web, capsys, args, needle):
    _refused(capsys, args, needle)
    assert not web.launches


def test_an_unnamed_small_file_is_refused_until_its_role_is_given(web, capsys, tmp_path):
    small = tmp_path / "small_names.csv"
    small.write_text("name\nAna\nLuis\n")
    _refused(capsys, ["datasets", "upload", str(small)], "cannot tell the role of 'small_names.csv'", "--role")
    code, _, body = _run(capsys, ["datasets", "upload", str(small), "--role", "names"], json_=True)
    assert code == 0 and body["ok"] and body["status"] == "stored" and body["by_reference"] is False
    [launch] = web.launched("ingest_job")
    config = launch["run_config"]["ops"]["dataset_uploads"]["config"]
    assert base64.b64decode(config["content_b64"]) == small.read_bytes() and config["filename"] == "names-small_names.csv"
    assert config["sha256"] == hashlib.sha256(small.read_bytes()).hexdigest() and "inbox_file" not in config


def test_upload_from_the_inbox_sends_a_reference_not_the_bytes(web, capsys):
    code, _, body = _run(capsys, ["datasets", "upload", "--from-inbox", "names-big.csv"], json_=True)
    assert code == 0 and body["ok"] and body["by_reference"] is True and body["new_keys"] == ["ana", "luis"], body
    [launch] = web.launched("ingest_job")
    config = launch["run_config"]["ops"]["dataset_uploads"]["config"]
    assert config == {"sha256": "ab" * 32, "inbox_file": "names-big.csv", "role": ""}
    assert launch["tags"]["dagster/partition"] == "names-" + "ab" * 8 and web.partitions_added == ["names-" + "ab" * 8]
    assert len(json.dumps(launch["run_config"])) < 500  # the run config stays small
