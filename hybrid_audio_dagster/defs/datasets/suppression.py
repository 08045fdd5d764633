"""``suppression``: the opt-out list, and the retirement of what its people still have.

It runs before ``names_dataset`` (which leaves them out: refused rows with reason
``suppressed``), in every batch and every upload's run. Each time, anyone on the list whom
the names snapshot still holds (or whom this change adds) loses their messages and manifest
rows, one partition at a time under the messages' lock, and the stems only they use, with
the privacy erase's own functions. It is in the messages pool, so no messages step writes
meanwhile. Every change is audited by hashes (never a name); the metadata shows how many are
suppressed, when the list last changed and what each change retired.
"""

import dagster as dg

from hybrid_audio_dagster.core.datasets.admin import list_datasets
from hybrid_audio_dagster.core.datasets.constants import SUPPRESSION
from hybrid_audio_dagster.core.datasets.snapshot import previous_items, read_says, read_snapshot
from hybrid_audio_dagster.core.datasets.suppression import (
    SuppressionListError,
    add_retired,
    person_hash,
    read_state,
    read_suppression,
    record_change,
    suppression_sources,
    write_state,
)
from hybrid_audio_dagster.core.privacy import Erasure, erase_messages, erase_stems, stems_only_theirs
from hybrid_audio_dagster.core.stems.index import ContractCache, render_slots
from hybrid_audio_dagster.core.stems.store import StemStore
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import load_templates
from hybrid_audio_dagster.defs.pools import MESSAGES_POOL
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import TTSResource

MAX_LISTED_CHANGES = 50


def retire_suppressed(paths: ProjectPaths, tts: TTSResource, targets: dict[str, tuple[str | None, str]]) -> Erasure:
    """Messages, manifest rows and the stems only they use of ``targets`` (hash → (slug or
    None, display)); everyone else keeps every file."""
    done = Erasure("")
    erase_messages(paths.output, {key for key, _ in targets.values() if key}, done)
    templates = load_templates(paths.templates)
    contract_for = ContractCache(tts.contract, getattr(tts, "pronunciation_contract", None))
    says = read_says(paths, "names")
    their_keys = {key or f"#{h[:12]}": display for h, (key, display) in targets.items()}
    their, _ = render_slots(SegmentKind.NAME, their_keys, templates, their_keys, contract_for, says)
    others_names = {i.key: i.display for i in previous_items(paths, "names") if person_hash(i.display) not in targets}
    developers = read_snapshot(paths, "developers") if (paths.datasets / "developers.json").exists() else {}
    others = render_slots(SegmentKind.NAME, others_names, templates, others_names, contract_for, says)[0]
    others += render_slots(SegmentKind.DEVELOPER, developers, templates, developers, contract_for, read_says(paths, "developers"))[0]
    others += render_slots(SegmentKind.SCRIPT, templates, templates, {}, contract_for)[0]
    texts, signatures = stems_only_theirs(their, others)
    erase_stems(StemStore(paths.stems), texts, signatures, done)
    return done


def record_suppression(context, paths: ProjectPaths, tts: TTSResource, gcs: DeliveryResource) -> tuple[dict, str]:
    """Read the list, record a change, retire what the listed still have: (metadata, fingerprint).
    The asset and ``ingest_job``'s op both call it."""
    try:
        current = read_suppression(paths)
    except SuppressionListError as exc:
        raise dg.Failure(str(exc)) from None
    state = read_state(paths)
    change = record_change(state, current)
    audit = run_auditor(context, paths)
    if change is not None:
        audit(
            "suppression_changed",
            fingerprint=current.fingerprint[:16],
            count=len(current.people),
            added=change["added"],
            removed=change["removed"],
        )
    targets: dict[str, tuple[str | None, str]] = {}
    for item in previous_items(paths, "names"):  # still in the names: the names asset drops them next
        if current.covers(item.display):
            targets[person_hash(item.display)] = (item.key, item.display)
    added = set(change["added"]) if change else set()
    for h, display in current.people.items():  # newly listed: their stems, whatever the names hold
        if h[:16] in added:
            targets.setdefault(h, (None, display))
    done = retire_suppressed(paths, tts, targets) if targets else Erasure("")
    bucket_deleted = gcs.forget(done, paths.output)
    if targets:
        add_retired(state, messages=done.messages_removed, rows=done.manifest_rows_removed, stems=done.stems_removed)
        audit(
            "suppression_retired",
            people=sorted(h[:16] for h in targets),
            messages=done.messages_removed,
            manifest_rows=done.manifest_rows_removed,
            stems=done.stems_removed,
            bucket_objects=bucket_deleted,
        )
    write_state(paths, state)
    changes = state.get("changes", [])[-MAX_LISTED_CHANGES:]
    rows = "\n".join(
        f"| {c['at']} | {c['count']} | {len(c['added'])} | {len(c['removed'])} | {c['messages_retired']} | "
        f"{c['manifest_rows_retired']} | {c['stems_removed']} |"
        for c in reversed(changes)
    )
    rejects = "\n".join(f"| {r.row} | {r.reason} | {r.message} |" for r in current.rejects[:100])
    metadata = {
        "suppressed": len(current.people),
        "last_changed": state.get("changed_at") or "never",
        "changed_now": change is not None,
        "messages_retired": done.messages_removed,
        "manifest_rows_retired": done.manifest_rows_removed,
        "stems_removed": done.stems_removed,
        "fingerprint": current.fingerprint,
        "sources": dg.MetadataValue.json([p.name for p in suppression_sources(paths)]),
        "listing": dg.MetadataValue.json(list_datasets(paths, (SUPPRESSION,))),  # for `datasets list`
        "changes": dg.MetadataValue.md(
            "| changed at (UTC) | suppressed | added | removed | messages retired | manifest rows retired | stems removed |\n"
            "|---|---|---|---|---|---|---|\n" + rows
            if rows
            else "none"
        ),
        # a refused row is shown by its number and reason only: the list names people who opted out
        "rejects": dg.MetadataValue.md("| row | reason | why |\n|---|---|---|\n" + rejects if rejects else "none"),
    }
    return metadata, current.fingerprint


@dg.asset(group_name="datasets", kinds={"csv"}, deps=["dataset_uploads"], pool=MESSAGES_POOL)
def suppression(context: dg.AssetExecutionContext, paths: ProjectPaths, tts: TTSResource, gcs: DeliveryResource) -> dg.MaterializeResult:
    """The suppression list (`data/suppression.csv` and `suppression` uploads): who is kept out
    of every message and rotation; retires what they still have."""
    metadata, fingerprint = record_suppression(context, paths, tts, gcs)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(fingerprint))


@dg.op(ins={"upload": dg.In(dg.Nothing)}, pool=MESSAGES_POOL, description="The suppression list, as its asset does.")
def apply_suppression_list(context: dg.OpExecutionContext, paths: ProjectPaths, tts: TTSResource, gcs: DeliveryResource) -> None:
    """``ingest_job``'s step between the upload and the rosters (an upload may change the list)."""
    metadata, _ = record_suppression(context, paths, tts, gcs)
    context.log_event(dg.AssetMaterialization(asset_key=suppression.key, metadata=metadata))
