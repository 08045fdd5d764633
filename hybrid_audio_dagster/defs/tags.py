"""Run tags that more than one domain writes or reads, declared once.

A *pipeline* is the runs of one batch, inbox ingest or rotation tick, linked by
:data:`PIPELINE_TAG`; ``pipeline_sensor`` advances it stage by stage.
"""

PIPELINE_TAG = "hybrid_audio/pipeline"  # one id per batch, ingest or rotation advance
STAGE_TAG = "hybrid_audio/stage"  # datasets | stems | messages | check | delivery
DRIVER_TAG = "hybrid_audio/driver"  # daemon (pipeline_sensor advances it) | cli (make batch does)
SCOPE_TAG = "hybrid_audio/scope"  # full | names | developers
TRIGGER_TAG = "hybrid_audio/trigger"  # nightly | inbox | rotation | cli | privacy | ui (the audit log's `trigger`)
# Dagster's own tags of a single-run backfill over a partition range
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# Dagster's own tag on every run of a backfill (its id), e.g. the UI's "Materialize all"
BACKFILL_TAG = "dagster/backfill"
