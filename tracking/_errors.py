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


MAX_TEXT = 20_000


def checked_text(value: str | None, what: str, *, kept_with: str | None = None, limit: int = MAX_TEXT) -> str:
    """A person's text (a justification, comment, description), stripped and at most `limit` characters.

    Args:
        value: the text as typed.
        what: its name in the message ("justification").
        kept_with: when given, the text is required, and the message says what it is kept with ("the decision").
        limit: the most characters it may hold.

    Raises:
        ValidationError: it is empty while required, or too long.
    """
    value = (value or "").strip()
    if kept_with is not None and not value:
        raise ValidationError(f"Write a {what}: it is kept with {kept_with}.")
    if len(value) > limit:
        raise ValidationError(f"The {what} holds at most {limit:,} characters.")
    return value
