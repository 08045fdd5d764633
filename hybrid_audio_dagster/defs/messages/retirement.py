"""``retired_outputs``: messages of removed templates, developers and names leave the output."""

import dagster as dg

from hybrid_audio_dagster.core.datasets.snapshot import read_snapshot
from hybrid_audio_dagster.core.messages.retire import retire_outputs
from hybrid_audio_dagster.core.templates import load_templates
from hybrid_audio_dagster.defs.pools import MESSAGES_POOL
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths


@dg.asset(
    group_name="messages",
    deps=["names_dataset", "developers_dataset", "message_templates"],
    pool=MESSAGES_POOL,
    kinds={"audio"},
)
def retired_outputs(context: dg.AssetExecutionContext, paths: ProjectPaths) -> dg.MaterializeResult:
    """Removes the message files and manifest rows of every template, developer and name that
    left its folder or dataset; everything else keeps its bytes and mtimes."""
    done = retire_outputs(
        paths.output,
        templates=set(load_templates(paths.templates)),
        developers=set(read_snapshot(paths, "developers")),
        names=set(read_snapshot(paths, "names")),
    )
    if done.files or done.rows:
        context.log.info(f"retired {len(done.partitions)} partition folders, {done.files} files, {done.rows} manifest rows")
    return dg.MaterializeResult(
        metadata={
            "partitions_retired": len(done.partitions),
            "files_removed": done.files,
            "rows_removed": done.rows,
            "manifests_rewritten": done.manifests_rewritten,
            "retired": dg.MetadataValue.json(done.partitions[:200]),
        }
    )
