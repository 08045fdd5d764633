"""Partitions, declared once. Keys are slugs (never display text: a ``|`` or an empty key
would break multi-partition keys)."""

import dagster as dg
from sqlalchemy.exc import IntegrityError

names_partitions = dg.DynamicPartitionsDefinition(name="names")
developers_partitions = dg.DynamicPartitionsDefinition(name="developers")
templates_partitions = dg.DynamicPartitionsDefinition(name="templates")

# One messages partition = every name's message for one template and one developer: a
# 10,000 × 50 campaign is 50 × templates partitions, not 500,000 (Dagster's sqlite
# bookkeeping costs ~15-20 ms per partition; assembling a message ~0.4 ms).
messages_partitions = dg.MultiPartitionsDefinition({"template": templates_partitions, "developer": developers_partitions})


def message_partition_dims(key: str) -> tuple[str, str]:
    """(template id, developer slug) of a messages partition key."""
    dims = messages_partitions.get_partition_key_from_str(str(key)).keys_by_dimension
    return dims["template"], dims["developer"]


def message_partition_key(template_id: str, developer_key: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"template": template_id, "developer": developer_key})


# One partition per file dropped in the inbox: "<role>-<sha256[:16]>" (role from the file name).
uploads_partitions = dg.DynamicPartitionsDefinition(name="uploads")

# One partition per rotation cycle: "cycle-0000", "cycle-0001", … (added by the advance run
# that starts the cycle).
rotation_cycles_partitions = dg.DynamicPartitionsDefinition(name="rotation_cycles")


def cycle_key(cycle: int) -> str:
    return f"cycle-{cycle:04d}"


ADD_CHUNK = 10_000  # keys per insert: sqlite binds one variable per key (at most 32,766 a statement)


def add_partitions(instance: dg.DagsterInstance, name: str, keys: list[str], attempts: int = 5) -> list[str]:
    """Add the dynamic partitions ``keys`` that are missing; returns those this call added.

    Dagster's sqlite event storage reads the existing keys and then inserts the rest, so two
    runs adding the same key at once (two batches, or a batch and an inbox ingest) make one of
    them fail with a UNIQUE error; Postgres upserts. Re-read and retry what is still missing.
    The keys go in chunks of ``ADD_CHUNK`` (a 300,000-name list in one statement is too many
    variables for sqlite).
    """
    added: list[str] = []
    for attempt in range(attempts):
        have = set(instance.get_dynamic_partitions(name))
        missing = [k for k in dict.fromkeys(keys) if k not in have]
        if not missing:
            return added
        try:
            for start in range(0, len(missing), ADD_CHUNK):
                chunk = missing[start : start + ADD_CHUNK]
                instance.add_dynamic_partitions(name, chunk)
                added += chunk
            return added
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    return added
