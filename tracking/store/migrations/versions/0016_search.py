"""search: params and metrics an index can find (run_values), and each run's words (run_words)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29

Existing runs get their rows here: the values straight from the JSON columns in SQL, the words in
batches (the tokenizing is Python's). Frozen on purpose: it does not import the library, which may change.
"""

from __future__ import annotations

import json
import re

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

STR = sqlmodel.sql.sqltypes.AutoString
SHORT_TEXT = 256
MAX_WORD = 64
WORD = re.compile(r"\w+(?:\.\w+)*")
EDGES = "\"'()[]{}<>,;:!?"
BATCH = 2000

SQLITE_FILL = """
INSERT INTO run_values (run_id, kind, key, number, text)
SELECT runs.id,
       CASE WHEN j.type IN ('true', 'false') THEN '{k}b'
            WHEN j.type = 'text' AND length(j.value) > {short} THEN '{k}l' ELSE '{k}' END,
       j.key,
       CASE WHEN j.type IN ('integer', 'real') THEN CAST(j.value AS REAL)
            WHEN j.type = 'true' THEN 1.0 WHEN j.type = 'false' THEN 0.0 END,
       CASE WHEN j.type = 'text' THEN substr(j.value, 1, {short}) END
FROM runs, json_each(runs.{column}) AS j
WHERE j.type != 'null'
"""
POSTGRES_FILL = """
INSERT INTO run_values (run_id, kind, key, number, text)
SELECT runs.id,
       CASE WHEN jsonb_typeof(j.value) = 'boolean' THEN '{k}b'
            WHEN jsonb_typeof(j.value) = 'string' AND length(j.value #>> '{{}}') > {short} THEN '{k}l' ELSE '{k}' END,
       j.key,
       CASE WHEN jsonb_typeof(j.value) = 'number' THEN CAST(j.value #>> '{{}}' AS DOUBLE PRECISION)
            WHEN jsonb_typeof(j.value) = 'boolean' THEN CASE WHEN j.value = 'true'::jsonb THEN 1.0 ELSE 0.0 END END,
       CASE WHEN jsonb_typeof(j.value) = 'string' THEN left(j.value #>> '{{}}', {short}) END
FROM runs CROSS JOIN LATERAL jsonb_each(runs.{column}) AS j
WHERE jsonb_typeof(j.value) != 'null'
"""


def upgrade() -> None:
    op.create_table(
        "run_values",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("kind", STR(), nullable=False),
        sa.Column("key", STR(), nullable=False),
        sa.Column("number", sa.Float(), nullable=True),
        sa.Column("text", STR(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "kind", "key"),
    )
    op.create_index("ix_run_values_number", "run_values", ["kind", "key", "number", "run_id"])
    op.create_index("ix_run_values_text", "run_values", ["kind", "key", "text", "run_id"])
    op.create_table(
        "run_words",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("word", STR(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "word"),
    )
    op.create_index("ix_run_words_word", "run_words", ["word", "run_id"], postgresql_ops={"word": "text_pattern_ops"})
    conn = op.get_bind()
    fill = SQLITE_FILL if conn.dialect.name == "sqlite" else POSTGRES_FILL
    for column, k in (("params", "p"), ("metrics", "m")):
        conn.exec_driver_sql(fill.format(column=column, k=k, short=SHORT_TEXT))
    _fill_words(conn)


def _fill_words(conn: sa.Connection) -> None:
    last = 0
    while True:
        runs = conn.execute(
            sa.text(
                "SELECT runs.id, runs.name, experiments.name, sweeps.name, runs.params FROM runs "
                "JOIN experiments ON experiments.id = runs.experiment_id "
                "LEFT JOIN sweeps ON sweeps.id = runs.sweep_id WHERE runs.id > :last ORDER BY runs.id LIMIT :n"
            ),
            {"last": last, "n": BATCH},
        ).all()
        if not runs:
            return
        last = runs[-1][0]
        texts = {}
        for run_id, name, experiment, sweep, params in runs:
            params = json.loads(params) if isinstance(params, str) else params or {}
            texts[run_id] = [name, experiment, sweep, *params.values()]
        ids = {"first": runs[0][0], "last": last}
        between = "run_id BETWEEN :first AND :last"
        for run_id, key, value in conn.execute(
            sa.text(f"SELECT run_id, key, value FROM run_tags WHERE {between}"), ids
        ):
            texts[run_id] += [key, value]
        for run_id, body in conn.execute(sa.text(f"SELECT run_id, body FROM notes WHERE {between}"), ids):
            texts[run_id].append(body)
        rows = [{"run_id": run_id, "word": word} for run_id, found in texts.items() for word in sorted(_words(found))]
        if rows:
            conn.execute(sa.text("INSERT INTO run_words (run_id, word) VALUES (:run_id, :word)"), rows)


def _words(texts: list) -> set[str]:
    found: set[str] = set()
    for text in texts:
        if text is not None and not isinstance(text, bool):
            for piece in str(text).casefold().split():  # as tracking.runs._index.words
                parts = WORD.findall(piece)
                found.update(part[:MAX_WORD] for part in parts)
                if len(parts) > 1:
                    found.add(piece.strip(EDGES)[:MAX_WORD])
    return found


def downgrade() -> None:
    op.drop_table("run_words")
    op.drop_table("run_values")
