"""Jobs: the stem and message asset jobs the inbox sensors launch, and the nightly batch job."""


import dagster as dg

from .assets.messages import messages
from .assets.stems import developer_stems, name_stems
from .batch import run_full_batch
from .resources.paths import ProjectPaths
from .resources.tts import TTSResource

name_stems_job = dg.define_asset_job(
    "name_stems_job",
    selection=dg.AssetSelection.assets(name_stems),
    description="Stems of some names (one partition or a range); launched by inbox_sensor for new names.",
)
developer_stems_job = dg.define_asset_job(
    "developer_stems_job",
    selection=dg.AssetSelection.assets(developer_stems),
    description="Stems of some developers; launched by inbox_sensor for new developers.",
)
messages_job = dg.define_asset_job(
    "messages_job",
    selection=dg.AssetSelection.assets(messages),
    description="Messages for a range of template × developer partitions (config `names` restricts the names); "
    "launched by messages_after_stems_sensor once the new stems exist.",
)

STEM_JOBS = {"names": name_stems_job, "developers": developer_stems_job}


class NightlyBatchConfig(dg.Config):
    """Run config of the nightly batch."""

    force_stems: bool = False  # re-synthesize every stem (costs TTS calls); normally False
    check: bool = False  # also run the bit-exact asset check over every message partition


@dg.op(description="Datasets → stems → messages, each stage one range run in this instance (batch.run_full_batch).")
def full_batch(context: dg.OpExecutionContext, config: NightlyBatchConfig, paths: ProjectPaths, tts: TTSResource) -> dg.Output[dict]:
    summary = run_full_batch(context.instance, {"paths": paths, "tts": tts}, force_stems=config.force_stems, check=config.check)
    for line in summary.lines():
        context.log.info(line)
    md: dict = summary.to_dict()
    md["runs"] = dg.MetadataValue.json(md["runs"])
    return dg.Output(summary.to_dict(), metadata=md)


@dg.job(
    description="The nightly full batch: materializes whatever is missing or stale across datasets, stems and "
    "messages (stems strictly before messages). On a warm cache it makes no TTS call.",
    tags={"hybrid_audio/trigger": "nightly"},
)
def nightly_batch_job() -> None:
    full_batch()


ALL_JOBS = [name_stems_job, developer_stems_job, messages_job, nightly_batch_job]
