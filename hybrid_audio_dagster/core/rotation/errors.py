"""The exceptions of the rotation engine (:class:`RotationError` and its subclasses)."""

from __future__ import annotations


class RotationError(Exception):
    """Base class of every error raised by the rotation engine."""


class DatasetError(RotationError, ValueError):
    """A dataset (names, developers, scripts) is empty or holds an invalid key."""


class RotationStateError(RotationError):
    """The state file or a membership sidecar is unreadable, corrupt or of another version."""


class RunKeyConflictError(RotationError):
    """A run key was reused for an advance with different parameters."""


class MissingReasonError(RotationError, ValueError):
    """reset/seek was called without a reason (the audit trail requires one)."""


class SeekError(RotationError, ValueError):
    """A seek target is outside the current cycle or not a member of it."""
