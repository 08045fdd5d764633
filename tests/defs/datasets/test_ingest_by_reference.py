"""Lists too big for a run's config go by reference: the file lies in the inbox and the
ingest run reads it there, with the same validation, rejection report and audit as an
upload by value; the run's input refusals carry ``refused`` for the CLI (exit 2)."""

import base64
import hashlib
import json
import string
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.core import audit
from hybrid_audio_dagster.core.inbox.parse import DEFAULT_MAX_BYTES, REFERENCE_MAX_BYTES
from hybrid_audio_dagster.definitions import build_defs
from hybrid_audio_dagster.defs.cli_result import REFUSED
from hybrid_audio_dagster.defs.datasets.admin import datasets_admin_job, delete_upload_job
from testkit.project import make_project

PREFIXES = ("Alexandria", "Benedicta", "Christopher", "Dominique", "Evangelina", "Florentino", "Guillermina", "Hildegarde")


def big_names(n: int) -> bytes:
    """``n`` unique letter-only names (~18 bytes a line): a prefix and i in base 26, 7 letters."""
    letters = string.ascii_lowercase
    rows = ["name"]
    for i in range(n):
        rows.append((PREFIXES[i % 8] + "".join(letters[(i // 26**k) % 26] for k in range(7))).capitalize())
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture
def project(tmp_path: Path):
    paths = make_project(tmp_path / "project", ["John"], ["Wyndham"])
    paths.inbox.mkdir(parents=True, exist_ok=True)
    return paths, dg.DagsterInstance.ephemeral()


def ingest(project, config: dict, key: str = "names-0000000000000000") -> dg.ExecuteInProcessResult:
    paths, instance = project
    instance.add_dynamic_partitions("uploads", [key])
    return (
        build_defs({"paths": paths})
        .get_job_def("ingest_job")
        .execute_in_process(
            partition_key=key,
            instance=instance,
            run_config={"ops": {"dataset_uploads": {"config": config}}},
            raise_on_error=False,
            tags={"hybrid_audio/trigger": "cli"},
        )
    )


def refusal_of(result: dg.ExecuteInProcessResult) -> tuple[str, str]:
    """(problem code, reason) of a refused run."""
    assert not result.success
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    data = event.step_failure_data
    return data.user_failure_data.metadata[REFUSED].value, data.user_failure_data.description


def audit_events(paths, event: str) -> list[dict]:
    return [e for e in audit.read(paths.logs) if e["event"] == event]


@pytest.mark.slow
def test_a_300000_name_list_is_ingested_from_the_inbox(project, capsys):
    """End to end through validation and storage (no synthesis): ~5.4 MB, 300,000 names."""
    paths, _ = project
    data = big_names(300_000)
    assert DEFAULT_MAX_BYTES < len(data) < REFERENCE_MAX_BYTES
    source = paths.inbox / "names-300k.csv"
    source.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    result = ingest(project, {"inbox_file": "names-300k.csv", "sha256": sha}, key=f"names-{sha[:16]}")
    assert result.success
    [mat] = result.asset_materializations_for_node("dataset_uploads")
    md = {k: v.value for k, v in mat.metadata.items()}
    assert md["status"] == "stored" and md["rows"] == 300_000 and md["rejected_rows"] == 0 and md["bytes"] == len(data)
    stored = paths.dataset_store / md["stored_as"]
    assert stored.read_bytes() == data and not source.exists()
    assert md["provenance"]["inbox_file"] == "names-300k.csv"
    [line] = audit_events(paths, "dataset_ingested")
    assert line["rows"] == 300_000 and line["sha256"] == sha and line["trigger"] == "cli"
    with capsys.disabled():
        print(f"\n[measured] 300,000 names, {len(data)} bytes: ingested by reference")


def test_a_bad_file_by_reference_is_rejected_with_a_report_and_audited(project):
    paths, _ = project
    data = b"name\nAna\n=HYPERLINK(1)\n12345\n"
    (paths.inbox / "people.csv").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    problem, reason = refusal_of(ingest(project, {"inbox_file": "people.csv", "sha256": sha, "role": "names"}))
    assert problem == "rows_rejected" and "2 row(s) failed validation" in reason
    [moved] = [p for p in paths.rejected.iterdir() if not p.name.endswith(".report.json")]
    report = json.loads(moved.with_name(moved.name + ".report.json").read_text())
    assert report["status"] == "rejected" and report["role"] == "names" and not (paths.inbox / "people.csv").exists()
    assert [e["problem"] for e in audit_events(paths, "dataset_rejected")] == ["rows_rejected"]


def test_the_role_option_names_an_inbox_file_whose_name_does_not(project):
    paths, _ = project
    data = b"name\nAna\nLuis\n"
    (paths.inbox / "small_list.csv").write_bytes(data)
    problem, reason = refusal_of(ingest(project, {"inbox_file": "small_list.csv", "sha256": hashlib.sha256(data).hexdigest()}))
    assert problem == "unknown_role" and "cannot tell from the file name" in reason
    (paths.inbox / "small_list.csv").write_bytes(data)  # the refused copy went to data/rejected/
    result = ingest(project, {"inbox_file": "small_list.csv", "sha256": hashlib.sha256(data).hexdigest(), "role": "names"})
    assert result.success and result.asset_materializations_for_node("dataset_uploads")[0].metadata["stored_as"].value.startswith("names/")


@pytest.mark.parametrize(
    "name, problem",
    [
        ("../names.csv", "unsafe_name"),
        ("/etc/passwd", "unsafe_name"),
        (".hidden.csv", "unsafe_name"),
        ("names-absent.csv", "not_in_inbox"),
    ],
)
def test_an_inbox_reference_is_a_plain_file_name_in_the_inbox(project, name, problem):
    assert refusal_of(ingest(project, {"inbox_file": name, "sha256": "0" * 64}))[0] == problem


def test_a_changed_file_and_a_bad_role_are_refused(project):
    paths, _ = project
    (paths.inbox / "names-a.csv").write_bytes(b"name\nAna\n")
    assert refusal_of(ingest(project, {"inbox_file": "names-a.csv", "sha256": "0" * 64}))[0] == "changed"
    assert refusal_of(ingest(project, {"inbox_file": "names-a.csv", "sha256": "0" * 64, "role": "people"}))[0] == "unknown_role"


def test_by_value_stays_bounded_by_what_a_run_config_carries(project):
    data = b"name\n" + b"Ana\n" * (DEFAULT_MAX_BYTES // 4 + 1)
    config = {"content_b64": base64.b64encode(data).decode(), "filename": "names.csv", "sha256": hashlib.sha256(data).hexdigest()}
    problem, reason = refusal_of(ingest(project, config))
    assert problem == "too_large" and "--from-inbox" in reason


def test_admin_describes_and_previews_an_inbox_file(project):
    paths, instance = project
    data = big_names(1_000)
    (paths.inbox / "names-1k.csv").write_bytes(data)

    def admin(**config):
        return datasets_admin_job.execute_in_process(
            run_config={"ops": {"datasets_admin": {"config": config}}}, instance=instance, resources={"paths": paths}, raise_on_error=False
        )

    entry = admin(action="inbox", inbox_file="names-1k.csv").output_for_node("datasets_admin")
    assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data) and entry["role"] == "names"
    out = admin(action="preview", inbox_file="names-1k.csv", n=3).output_for_node("datasets_admin")
    assert out["total_items"] == 1_000 and len(out["items"]) == 3 and out["report"]["status"] == "accepted"
    assert (paths.inbox / "names-1k.csv").exists()  # a preview moves nothing
    problem, reason = refusal_of(admin(action="inbox", inbox_file="names-2k.csv"))
    assert problem == "not_in_inbox" and "names-1k.csv" in reason
    deleted = delete_upload_job.execute_in_process(
        run_config={"ops": {"delete_upload": {"config": {"name": "../names.csv"}}}},
        instance=instance,
        resources={"paths": paths},
        raise_on_error=False,
    )
    assert refusal_of(deleted)[0] == "refused"
