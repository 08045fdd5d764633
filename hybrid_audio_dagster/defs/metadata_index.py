"""The cache index: the latest materialization metadata of each partition of an asset.

Read in bulk through the public ``fetch_materializations`` API: newest first, a few
hundred partitions per query, keeping the first record seen per partition. Per-key lookups
would cost ~2 ms each on sqlite, which is seconds for a few thousand names.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

_CHUNK = 500  # partitions per query: far below sqlite's bound-parameter limit
_PAGE = 2000  # records per page


def latest_metadata(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_keys: Iterable[str]) -> dict[str, dict]:
    """partition key → {metadata label: raw value} of its latest materialization."""
    keys = list(dict.fromkeys(str(k) for k in partition_keys))
    out: dict[str, dict] = {}
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        wanted = set(chunk)
        cursor = None
        while wanted:
            result = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=chunk), limit=_PAGE, cursor=cursor
            )
            for record in result.records:
                mat = record.asset_materialization
                if mat is None or mat.partition not in wanted:
                    continue
                out[mat.partition] = {k: v.value for k, v in mat.metadata.items()}
                wanted.discard(mat.partition)
            if not result.has_more:
                break
            cursor = result.cursor
    return out
