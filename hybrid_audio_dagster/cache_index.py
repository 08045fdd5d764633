"""The cache index: the latest materialization metadata of each partition of an asset.

Read in bulk (two queries) rather than per partition: per-key lookups cost ~2 ms each on
sqlite, which is seconds for a few thousand names.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
from dagster._core.events import DagsterEventType

_CHUNK = 500  # stay far below sqlite's bound-parameter limit


def latest_metadata(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_keys: Iterable[str]
) -> dict[str, dict]:
    """partition key → {metadata label: raw value} of its latest materialization."""
    keys = list(dict.fromkeys(partition_keys))
    out: dict[str, dict] = {}
    for i in range(0, len(keys), _CHUNK):
        chunk = set(keys[i : i + _CHUNK])
        ids = instance.get_latest_storage_id_by_partition(asset_key, DagsterEventType.ASSET_MATERIALIZATION, chunk)
        if not ids:
            continue
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(ids.values())), limit=len(ids)
        )
        for record in result.records:
            mat = record.asset_materialization
            if mat is None or mat.partition is None:
                continue
            out[mat.partition] = {k: v.value for k, v in mat.metadata.items()}
    return out
