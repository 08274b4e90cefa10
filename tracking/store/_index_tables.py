"""The search index's tables: params and final metrics as typed rows, and the words of each run (schema 0016).

They repeat what the runs' JSON holds, in a form the database can index; `tracking.runs._index` keeps them in step.
"""

from __future__ import annotations

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class RunValue(SQLModel, table=True):
    """One param or final metric of a run, typed, so filters and sorts go by index (the JSON stays the record).

    `kind` says what and which type: `p`/`m` a number (`number`) or a text of up to `SHORT_TEXT`
    characters (`text`), `pb`/`mb` a boolean (`number` 0 or 1), `pl`/`ml` a longer text (its first
    `SHORT_TEXT` characters in `text`; filters check those runs against the JSON). JSON nulls have no row.
    """

    __tablename__ = "run_values"
    __table_args__ = (
        Index("ix_run_values_number", "kind", "key", "number", "run_id"),
        Index("ix_run_values_text", "kind", "key", "text", "run_id"),
    )
    run_id: int = Field(foreign_key="runs.id", primary_key=True)
    kind: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    number: float | None = None
    text: str | None = None


class RunWord(SQLModel, table=True):
    """A word (lowercase) of a run's name, experiment, sweep, tags, notes or param values: the search box's index."""

    __tablename__ = "run_words"
    __table_args__ = (Index("ix_run_words_word", "word", "run_id", postgresql_ops={"word": "text_pattern_ops"}),)
    run_id: int = Field(foreign_key="runs.id", primary_key=True)
    word: str = Field(primary_key=True)
