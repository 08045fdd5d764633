"""Delivery to Google Cloud Storage: the bucket layout, a verified mirror, the consistency
report and verify-and-repair. Pure library: no Dagster here (``defs/resources/gcs.py`` wraps it).

- :mod:`.layout`: object names below a prefix, :class:`InventoryEntry`, checksums.
- :mod:`.mirror`: :class:`GCSMirror` (upload / download / list / exists / sync), retries.
- :mod:`.consistency`: :func:`compare` / :func:`build_report`, Markdown and JSON lines.
- :mod:`.repair`: :func:`plan_repair`, :func:`execute_repair`, :func:`repair` (dry run).
- :mod:`.errors`: :class:`DeliveryError` and its subclasses.
"""
