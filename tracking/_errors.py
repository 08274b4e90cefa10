"""Exceptions of the tracking library.

`TrackingError` subclasses carry one sentence meant for a person; the CLI and the pages show that
sentence as it is. Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class TrackingError(Exception):
    """A mistake a user can fix; the message says what was wrong and what to do."""


class NotFoundError(TrackingError):
    """A named or numbered thing does not exist in the store."""


class ValidationError(TrackingError):
    """Input (a search space, a dataset, a CLI option) is not acceptable."""


class IntegrityError(TrackingError):
    """Stored content does not match its recorded hash, or a write conflicts with the store."""


class StoreError(TrackingError):
    """The store could not be opened or written (bad URL, unreachable server, locked file)."""


class PermissionDenied(TrackingError):
    """The signed-in account (or nobody, on a store with accounts) may not do this."""
