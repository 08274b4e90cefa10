"""Optuna's journal storage, kept in a table of the tracking store.

Optuna advises its journal rather than its RDB storage for parallel workers on SQLite. Keeping the
journal in the store instead of a file beside it means one file holds everything, no file lock and
no fsync per entry, and, because a transaction the worker already has open is joined, the trial
Optuna hands out and the run that records it are committed together.

The backend pickles as the store's URL, artifact folder and journal name, and reopens the store on the
other side: Optuna pickles storages (its own storage contract tests it), e.g. to hand them to processes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, insert, select

from tracking.store._db import Store, open_store
from tracking.store._tables import OptunaJournalEntry as Entry

# Optuna is imported inside the functions that use it: `import tracking` stays light.

_READ = (
    select(Entry.log)
    .where(Entry.journal == bindparam("b_journal"), Entry.seq >= bindparam("b_from"))
    .order_by(Entry.seq)
)
_NEXT = select(func.coalesce(func.max(Entry.seq) + 1, 0)).where(Entry.journal == bindparam("b_journal"))
_APPEND = insert(Entry)


class StoreJournalBackend:
    """An Optuna journal backend over the store's `optuna_journal` rows named `journal`.

    Registered as a virtual subclass of Optuna's `BaseJournalBackend` on first use (`journal_storage`), so
    that this module imports without Optuna.
    """

    def __init__(self, store: Store, journal: str) -> None:
        self.store = store
        self.journal = journal

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        with self.store.connect() as conn:
            rows = conn.execute(_READ, {"b_journal": self.journal, "b_from": log_number_from}).scalars().all()
        return [json.loads(row) for row in rows]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        # Write transactions are serialized, so max(seq) + 1 numbers the entries without gaps.
        with self.store.connect(write=True) as conn:
            start = conn.execute(_NEXT, {"b_journal": self.journal}).scalar_one()
            conn.execute(
                _APPEND,
                [
                    {"journal": self.journal, "seq": start + i, "log": json.dumps(log, separators=(",", ":"))}
                    for i, log in enumerate(logs)
                ],
            )

    def __reduce__(self) -> tuple[Any, tuple[str, str, str]]:
        # The engine and its connections cannot be pickled; the store's address can.
        return _reopen, (self.store.url, str(self.store.artifact_root.parent), self.journal)


def _reopen(url: str, home: str, journal: str) -> StoreJournalBackend:
    return StoreJournalBackend(open_store(url, home=Path(home)), journal)


def journal_storage(store: Store, journal: str) -> Any:
    """An Optuna `JournalStorage` whose journal is the store's `optuna_journal` rows named `journal`."""
    import optuna
    from optuna.storages.journal import BaseJournalBackend

    BaseJournalBackend.register(StoreJournalBackend)
    return optuna.storages.JournalStorage(StoreJournalBackend(store, journal))
