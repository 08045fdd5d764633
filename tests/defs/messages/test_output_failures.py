"""Disk full / permission denied while writing messages (issue 12 item 4): a failure naming
the path, old messages and manifests intact, and the next batch completes."""

from __future__ import annotations

import errno
import glob
import os
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.defs.messages.checks import verify_partition
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.runner.batch import BatchError, run_full_batch
from testkit.project import make_project
from tests.support.campaign import CountingTTS
from tests.support.crash import (
    DEVELOPERS,
    NAMES,
    assert_final_files_whole,
    message_mtimes,
    temp_files,
    verify_all,
)


# -- disk full / permission denied on output ----------------------------------------------------------
def project_resources(root: Path, names: list[str], tts_log: Path) -> tuple[ProjectPaths, dict]:
    from hybrid_audio_dagster.defs.resources.budget import SpendGuardResource
    from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource

    paths = make_project(root, names, DEVELOPERS[:2])
    return paths, {
        "paths": paths,
        "tts": CountingTTS(log_path=str(tts_log)),
        "spend_guard": SpendGuardResource(),
        "gcs": DeliveryResource(),
    }


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


@pytest.mark.timeout(240)
@pytest.mark.parametrize("failure", ["ENOSPC on write", "EACCES on rename"])
def test_disk_full_or_permission_denied_fails_clearly_loses_nothing_and_the_next_run_completes(failure, tmp_path, monkeypatch):
    old_names, new_names = NAMES[:4], NAMES[4:12]
    paths, resources = project_resources(tmp_path / "project", old_names, tmp_path / "tts.log")
    instance = dg.DagsterInstance.ephemeral()
    run_full_batch(instance, resources)
    manifests = sorted(glob.glob(str(paths.output / "**" / "manifest.parquet"), recursive=True))
    before = {m: Path(m).read_bytes() for m in manifests}
    old_files = message_mtimes(paths)
    assert len(old_files) == len(old_names) * 4

    # new names: their stems are made, then the output disk fails after a few messages
    (paths.data / "names.csv").write_text("name\n" + "\n".join(old_names + new_names) + "\n")
    out_prefix = str(paths.output)
    count = {"n": 0}
    if failure.startswith("ENOSPC"):
        real = os.writev

        def fake(fd, bufs):
            if _fd_path(fd).startswith(out_prefix) and _fd_path(fd).endswith(".tmp"):
                count["n"] += 1
                if count["n"] > 5:
                    raise OSError(errno.ENOSPC, "No space left on device")
            return real(fd, bufs)

        monkeypatch.setattr(os, "writev", fake)
        code = errno.ENOSPC
    else:
        real = os.replace

        def fake(src, dst, *a, **k):
            if str(dst).startswith(out_prefix) and str(dst).endswith(".wav"):
                count["n"] += 1
                if count["n"] > 5:
                    raise PermissionError(errno.EACCES, "Permission denied")
            return real(src, dst, *a, **k)

        monkeypatch.setattr(os, "replace", fake)
        code = errno.EACCES
    with pytest.raises(BatchError) as info:
        run_full_batch(instance, resources)
    message = str(info.value)
    assert message.startswith("messages run") and os.strerror(code) in message, message
    assert f"{out_prefix}/" in message and ".wav" in message, message  # names the file it could not write
    monkeypatch.undo()

    # nothing lost: old messages and manifests as they were; no partial file, no temp file
    assert {m: Path(m).read_bytes() for m in manifests} == before
    now = message_mtimes(paths)
    assert all(now[p] == m for p, m in old_files.items())
    assert not glob.glob(str(paths.output / "**" / ".*.tmp"), recursive=True)
    assert_final_files_whole(paths)
    for tdir in paths.output.iterdir():
        for ddir in tdir.iterdir():
            assert not verify_partition(paths, tdir.name, ddir.name)[1]
    written_before_fix = now.keys() - old_files.keys()
    assert 0 < len(written_before_fix) < len(new_names) * 4

    # the next run completes; what the failed run finished is not written again
    summary = run_full_batch(instance, resources)
    final = message_mtimes(paths)
    assert len(final) == len(old_names + new_names) * 4
    assert all(final[p] == now[p] for p in written_before_fix), "a message the failed run finished was rewritten"
    assert summary.messages_written == len(new_names) * 4 - len(written_before_fix)
    assert summary.tts_calls == 0
    assert not temp_files(paths)
    verify_all(paths, old_names + new_names)
