r"""The run filter language: `metrics.accuracy > 0.9 and params.model = "rf"` becomes a SQL WHERE clause.

A filter is parsed by a lark LALR grammar and compiled into a SQLAlchemy expression over the runs query
(`runs` joined to `experiments`, outer-joined to `dataset_versions`). Every value typed becomes a bound
parameter; nothing typed becomes SQL text. It works the same on SQLite and PostgreSQL.

| Field | Values | Example |
|---|---|---|
| `metrics.<key>`, `params.<key>` | number, string, `true`/`false`, `null` | `metrics.accuracy >= 0.9`, `params."max depth" = 5` |
| `tags.<key>` | string | `tags.stage = "prod"`, `tags.reviewed is null` |
| `status` | running, complete, pruned, failed, killed | `status in ("failed", "killed")` |
| `name`, `experiment`, `code_version`, `host` | string | `name like "baseline%"` |
| `id`, `trial_number` | number | `trial_number < 10` |
| `sweep` | sweep id (number) or sweep name (string) | `sweep = 3`, `sweep = "lr-search"` |
| `dataset` | dataset name, or a sha256 prefix of 6+ hex digits | `dataset = "iris"`, `dataset = "3fa9c1"` |
| `started_at`, `finished_at` | ISO date or datetime string | `started_at >= "2026-11-01"` |

| Operator | Example |
|---|---|
| `=`, `!=`, `<`, `<=`, `>`, `>=` | `metrics.loss < 0.2` |
| `in (...)`, `not in (...)` | `params.model in ("rf", "svm")` |
| `like`, `not like` (`%` any text, `_` one character, case-insensitive) | `experiment like "iris-%"` |
| `is null`, `is not null` (`= null` and `!= null` mean the same) | `finished_at is null` |
| `and`, `or`, `not`, `( )`; `not` binds tightest, then `and`, then `or` | `not (status = "failed" or metrics.f1 < 0.5)` |

Keywords and field names are case-insensitive; keys are not. Strings take double or single quotes; inside
them `\"`, `\'` and `\\` stand for the character itself, and other backslashes stay (so in a like pattern
`"100\%"` matches a literal `%`). Quote a key with characters other than letters, digits, `_` and `-`.

- A JSON field compared with a number matches only runs where it holds a number (likewise strings and
  booleans), so `params.max_features > 0.3` skips runs where it is "sqrt". A run lacking the key, or
  holding null there, matches no comparison, not even `!=`; `not (...)` of that comparison matches it.
- `dataset = "x"` matches runs on a dataset version named x; when x is 6 to 64 hex digits, it also
  matches versions whose sha256 starts with x. `like` looks at names only.
- `sweep = 3` compares the sweep id; `sweep = "name"` compares the sweep's name.
- Times are UTC unless the string carries an offset; a date alone means midnight UTC.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any, NoReturn

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedToken
from sqlalchemy import BigInteger, Float, String, and_, cast, false, func, literal, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from tracking._errors import ValidationError
from tracking.runs._index import KINDS, search_terms
from tracking.store import DatasetVersion, Experiment, Run, RunStatus, RunTag, RunValue, RunWord, Sweep

MAX_LENGTH = 2000
MAX_DEPTH = 32

_GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> negation
    | condition
    | "(" or_expr ")"
condition: field OP value -> compare
    | field _IN list -> in
    | field _NOT _IN list -> not_in
    | field _LIKE STRING -> like
    | field _NOT _LIKE STRING -> not_like
    | field _IS NULL -> is_null
    | field _IS _NOT NULL -> is_not_null
list: "(" value ("," value)* ")"
field: NAME ("." (NAME | STRING))?
?value: NUMBER | STRING | TRUE | FALSE | NULL

_OR.2: /or(?![\w-])/i
_AND.2: /and(?![\w-])/i
_NOT.2: /not(?![\w-])/i
_IN.2: /in(?![\w-])/i
_LIKE.2: /like(?![\w-])/i
_IS.2: /is(?![\w-])/i
TRUE.2: /true(?![\w-])/i
FALSE.2: /false(?![\w-])/i
NULL.2: /null(?![\w-])/i
OP: /!=|<=|>=|=|<|>/
NUMBER: /-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/
STRING: /"(?:[^"\\]|\\.)*"/s | /'(?:[^'\\]|\\.)*'/s
NAME: /[^\W\d][\w-]*/
%ignore /\s+/
"""

_WORDS = {"STRING": "a quoted string", "NULL": "'null'", "LPAR": "'('", "RPAR": "')'", "COMMA": "','"}
_WORDS |= {name: f"'{name.strip('_').lower()}'" for name in ("_OR", "_AND", "_NOT", "_IN", "_LIKE", "_IS")}
_WORDS["$END"] = "the end of the filter"
_ORDERING = {"<", "<=", ">", ">="}
_OPERATORS: dict[str, Callable[[Any, list[Any]], ColumnElement[bool]]] = {
    "=": lambda expr, values: expr == values[0],
    "!=": lambda expr, values: expr != values[0],
    "<": lambda expr, values: expr < values[0],
    "<=": lambda expr, values: expr <= values[0],
    ">": lambda expr, values: expr > values[0],
    ">=": lambda expr, values: expr >= values[0],
    "in": lambda expr, values: expr.in_(values),
    "not in": lambda expr, values: expr.not_in(values),
    "like": lambda expr, values: expr.ilike(values[0], escape="\\"),
    "not like": lambda expr, values: expr.not_ilike(values[0], escape="\\"),
    "is null": lambda expr, _: expr.is_(None),
    "is not null": lambda expr, _: expr.is_not(None),
}
_NEGATIVE = {"!=", "not in", "not like"}
_STATUSES = ", ".join(status.value for status in RunStatus)
_SHA_PREFIX = re.compile(r"[0-9a-fA-F]{6,64}")


class FilterError(ValidationError):
    """A filter that does not parse or compile; `.column` is the 1-based position of the mistake in the text."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class _Value:
    kind: str  # "number", "string", "bool" or "null"
    value: Any
    token: Token


@dataclass(frozen=True)
class _Condition:
    field: str  # as shown in messages, e.g. "params.lr"
    key: str | None
    op: str
    values: list[_Value]
    at: Token


def compile_filter(text: str, frequent: Callable[[ColumnElement[bool]], bool] | None = None) -> ColumnElement[bool]:
    """Parse a run filter and return a WHERE clause over the runs query.

    Args:
        text: a filter such as `metrics.accuracy > 0.9 and status = "complete"`; blank means every run.
        frequent: tells whether a condition on `run_values` holds for many runs (see `compile_search`):
            such a condition is checked run by run as runs are read in sort order, a rare one is looked up
            once. Without it every condition is looked up once.

    Returns:
        A boolean SQLAlchemy expression using `Run`, `Experiment` and `DatasetVersion` columns.

    Raises:
        FilterError: the filter is malformed, too long or too deeply nested, names an unknown field, or
            compares a field with a value of the wrong kind.
    """
    if not text.strip():
        return true()
    if len(text) > MAX_LENGTH:
        _fail(MAX_LENGTH + 1, f"the filter is longer than {MAX_LENGTH} characters; shorten it.")
    bad = next((i for i, char in enumerate(text) if char == "\0" or "\ud800" <= char <= "\udfff"), None)
    if bad is not None:
        _fail(bad + 1, "the filter contains a character that cannot be stored (NUL or a lone surrogate).")
    token = _FREQUENT.set(frequent)
    try:
        return _build(_parse(text))
    finally:
        _FREQUENT.reset(token)


_FREQUENT: ContextVar[Callable[[ColumnElement[bool]], bool] | None] = ContextVar("frequent", default=None)


def _holds(table: Any, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """The runs for which some row of `table` (run_values or run_words) meets `condition`.

    A rare condition becomes `runs.id IN (rows)`, read once from an index; a frequent one an EXISTS on the
    run's own rows (by primary key), so a page read in sort order stops after its rows are found. Its
    `OFFSET 0` keeps PostgreSQL from turning the EXISTS into a join: misled by its estimates on a million
    runs, it joined every matching row and sorted them (0.26 s at 100,000 runs, 30 ms run by run).
    """
    frequent = _FREQUENT.get()
    if frequent is not None and frequent(condition):
        return select(table.run_id).where(table.run_id == Run.id, condition).correlate(Run).offset(0).exists()
    return Run.id.in_(select(table.run_id).where(condition))


@cache
def _parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=False)


def _parse(text: str) -> Tree:
    interactive = _parser().parse_interactive(text)
    previous = current = None
    try:
        for token in interactive.iter_parse():
            previous, current = current, token
        return interactive.feed_eof(current)
    except UnexpectedToken as err:
        before = previous if err.token is current else current
        at_end = err.token.type == "$END"
        found = "the end of the filter" if at_end else _shown(err.token)
        column = len(text.rstrip()) + 1 if at_end else err.token.start_pos + 1
        _fail(column, _explain(interactive.accepts(), before, found))
    except UnexpectedCharacters as err:
        found = "an unterminated string" if err.char in "\"'" else f"'{err.char}'"
        _fail(err.pos_in_stream + 1, _explain(interactive.accepts(), current, found))


def _explain(expected: set[str], before: Token | None, found: str) -> str:
    """One sentence from what the parser could have taken next (lark's terminal names) and what it got."""
    if "NUMBER" in expected:
        wanted = "a value"
    elif "OP" in expected:
        wanted = "an operator (=, !=, <, <=, >, >=, in, not in, like, is null)"
    elif "NAME" in expected:
        wanted = "a field name" if "LPAR" in expected else "a key"
    else:
        words = sorted(_WORDS.get(name, name) for name in expected)
        wanted = " or ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words) or "nothing"
    after = f" after {_shown(before)}" if before is not None else ""
    return f"expected {wanted}{after} but found {found}."


def _shown(token: Token) -> str:
    text = token.value if len(token.value) <= 30 else token.value[:27] + "..."
    return text if token.type == "STRING" else f"'{text}'"


def _fail(at: Token | int, message: str) -> NoReturn:
    column = at if isinstance(at, int) else at.start_pos + 1
    raise FilterError(f"Filter error at column {column}: {message}", column)


def _build(tree: Tree, depth: int = 1) -> ColumnElement[bool]:
    if depth > MAX_DEPTH:  # refused before Python's recursion limit or the database's comes near
        _fail(tree.meta.start_pos + 1, f"the filter nests deeper than {MAX_DEPTH} levels; simplify it.")
    if tree.data == "or_expr":
        return or_(*(_build(child, depth + 1) for child in tree.children))
    if tree.data == "and_expr":
        return and_(*(_build(child, depth + 1) for child in tree.children))
    if tree.data == "negation":
        # SQL's NOT of an unknown (a missing value) is still unknown; a filter's `not` means "does not match"
        return not_(func.coalesce(_build(tree.children[0], depth + 1), false()))
    return _condition(tree)


def _condition(tree: Tree) -> ColumnElement[bool]:
    field, *rest = tree.children
    name, key = field.children[0], field.children[1] if len(field.children) > 1 else None
    op = tree.data.replace("_", " ")
    if op == "compare":
        op, rest = str(rest[0]), rest[1:]
    elif op.endswith("in"):
        rest = rest[0].children
    values = [_value(token) for token in rest] if "null" not in op else []
    if values and values[0].kind == "null":
        if op not in ("=", "!="):
            _fail(values[0].token, "null only goes with =, != or is; write 'is null' or 'is not null'.")
        op, values = ("is null" if op == "=" else "is not null"), []
    for value in values:
        if value.kind == "null":
            _fail(value.token, "null cannot be in a list; add 'or ... is null' instead.")
    handler = _FIELDS.get(name.lower())
    if handler is None or (key is None) == (name.lower() in _KEYED):
        _unknown_field(name, key)
    key_text = None if key is None else _unquote(key) if key.type == "STRING" else str(key)
    label = name.lower() if key is None else f"{name.lower()}.{key}"
    return handler(_Condition(label, key_text, op, values, name))


def _unknown_field(name: Token, key: Token | None) -> NoReturn:
    if name.lower() in _KEYED:
        _fail(name, f"'{name}' needs a key after a dot, like {name.lower()}.accuracy.")
    shown = f"{name}.{key}" if key is not None else str(name)
    plain = ", ".join(sorted(set(_FIELDS) - _KEYED))
    _fail(name, f"unknown field {_shown(Token('NAME', shown))}; use metrics.<key>, params.<key>, tags.<key>, {plain}.")


def _value(token: Token) -> _Value:
    if token.type == "NUMBER":
        number = int(token) if token.lstrip("-").isdigit() else float(token)
        return _Value("number", float(token) if abs(number) >= 2**63 else number, token)
    if token.type == "STRING":
        return _Value("string", _unquote(token), token)
    if token.type == "NULL":
        return _Value("null", None, token)
    return _Value("bool", token.type == "TRUE", token)


def _unquote(token: Token) -> str:
    return re.sub(r"""\\(["'\\])""", r"\1", token[1:-1])


def _apply(expr: Any, op: str, values: list[Any]) -> ColumnElement[bool]:
    """`expr <op> values` for one operator of the language; SQLAlchemy binds the values as parameters."""
    return _OPERATORS[op](expr, values)


def _refuse_ordering(cond: _Condition, at: Token) -> None:
    if cond.op in _ORDERING:
        _fail(at, f"{cond.field} can only be compared with =, !=, in, not in, like or is null.")


def _text(cond: _Condition, value: _Value) -> str:
    if value.kind != "string":
        _fail(value.token, f'{cond.field} holds text; put the value in quotes, like "{value.token}".')
    if cond.op.endswith("like") and re.search(r"(?<!\\)(\\\\)*\\$", value.value):
        _fail(value.token, "a like pattern cannot end with a single backslash.")
    return value.value


def _number(cond: _Condition, value: _Value) -> ColumnElement[float]:
    if value.kind != "number" or cond.op.endswith("like"):
        _fail(value.token, f"{cond.field} holds numbers; compare it with a number, like {cond.field} = 3.")
    # typed by the value, not the column: PostgreSQL would cast 1.5 or 3e9 to a 32-bit integer column's type
    return literal(value.value, BigInteger() if isinstance(value.value, int) else Float())


def _time(cond: _Condition, value: _Value) -> datetime:
    hint = 'a date like "2026-11-01" or "2026-11-01T10:00:00"'
    if value.kind != "string" or cond.op.endswith("like"):
        _fail(value.token, f"{cond.field} holds times; compare it with {hint}.")
    try:
        moment = datetime.fromisoformat(value.value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        _fail(value.token, f"{value.token} is not a date or time; use {hint}.")


def _column(column: Any, convert: Callable[[_Condition, _Value], Any], cond: _Condition) -> ColumnElement[bool]:
    return _apply(column, cond.op, [convert(cond, value) for value in cond.values])


def _status(cond: _Condition) -> ColumnElement[bool]:
    _refuse_ordering(cond, cond.at)
    if cond.op.endswith("like"):
        return _apply(cast(Run.status, String), cond.op, [_text(cond, cond.values[0])])
    statuses = []
    for value in cond.values:
        if value.kind != "string" or value.value.lower() not in RunStatus.__members__:
            _fail(value.token, f"{value.token} is not a run status; use one of {_STATUSES}.")
        statuses.append(RunStatus(value.value.lower()))
    return _apply(Run.status, cond.op, statuses)


def _sweep(cond: _Condition) -> ColumnElement[bool]:
    if not cond.values or all(value.kind == "number" for value in cond.values):
        return _apply(Run.sweep_id, cond.op, [_number(cond, value) for value in cond.values])
    ids = [_number(cond, value) for value in cond.values if value.kind == "number"]
    names = [_text(cond, value) for value in cond.values if value.kind != "number"]
    parts = [_apply(Sweep.name, cond.op, names)] + ([_apply(Sweep.id, cond.op, ids)] if ids else [])
    # a sweep is excluded when its id or its name is listed, and included when either is
    combined = and_(*parts) if cond.op in _NEGATIVE else or_(*parts)
    return Run.sweep_id.in_(select(Sweep.id).where(combined))


def _dataset(cond: _Condition) -> ColumnElement[bool]:
    _refuse_ordering(cond, cond.at)
    if not cond.values:
        return _apply(Run.dataset_version_id, cond.op, [])
    if cond.op.endswith("like"):
        return _apply(DatasetVersion.name, cond.op, [_text(cond, cond.values[0])])
    matches = []
    for value in cond.values:
        text = _text(cond, value)
        match = DatasetVersion.name == text
        if _SHA_PREFIX.fullmatch(text):
            match = or_(match, DatasetVersion.sha256.startswith(text.lower()))
        matches.append(match)
    if cond.op in _NEGATIVE:
        return and_(Run.dataset_version_id.is_not(None), not_(or_(*matches)))
    return or_(*matches)


def _tag(cond: _Condition) -> ColumnElement[bool]:
    tagged = select(RunTag.id).where(RunTag.run_id == Run.id, RunTag.key == cond.key).correlate(Run)
    if not cond.values:
        return tagged.exists() if cond.op == "is not null" else ~tagged.exists()
    values = [_text(cond, value) for value in cond.values]
    return tagged.where(_apply(RunTag.value, cond.op, values)).exists()


class _JsonScalar(FunctionElement):
    """The value at a key of a JSON column when it has the JSON kind of the subclass, else NULL.

    Compiled per dialect: PostgreSQL would fail the whole query casting the text of a string to float,
    and SQLite would order any text above every number, so the kind is checked before the value is used.
    """

    inherit_cache = True
    kind = "any"


class _JsonNumber(_JsonScalar):
    inherit_cache, type, kind = True, Float(), "number"


class _JsonText(_JsonScalar):
    inherit_cache, type, kind = True, String(), "text"


class _JsonBool(_JsonScalar):  # 'true' or 'false' when the value is a JSON boolean
    inherit_cache, type, kind = True, String(), "bool"


_SQLITE_KINDS = {"number": "('integer', 'real')", "text": "('text')", "bool": "('true', 'false')"}
_POSTGRES_KINDS = {"number": "'number'", "text": "'string'", "bool": "'boolean'"}


@compiles(_JsonScalar)  # also what str(filter) shows
@compiles(_JsonScalar, "sqlite")
def _sqlite_json(element: _JsonScalar, compiler: Any, **kw: Any) -> str:
    column, key = (compiler.process(clause, **kw) for clause in element.clauses)
    path = f"'$.\"' || {key} || '\"'"  # the key is a bound parameter; `"` in keys is refused earlier
    if element.kind == "any":
        return f"json_extract({column}, {path})"
    value = "json_type" if element.kind == "bool" else "json_extract"
    return f"CASE WHEN json_type({column}, {path}) IN {_SQLITE_KINDS[element.kind]} THEN {value}({column}, {path}) END"


@compiles(_JsonScalar, "postgresql")
def _postgres_json(element: _JsonScalar, compiler: Any, **kw: Any) -> str:
    column, key = (compiler.process(clause, **kw) for clause in element.clauses)
    text = f"({column} ->> {key})"
    if element.kind == "any":
        return text
    value = f"CAST({text} AS DOUBLE PRECISION)" if element.kind == "number" else text
    return f"CASE WHEN jsonb_typeof({column} -> {key}) = {_POSTGRES_KINDS[element.kind]} THEN {value} END"


def _json_bool(cond: _Condition, value: _Value) -> float:
    _refuse_ordering(cond, value.token)
    return 1.0 if value.value else 0.0


def _json_number(cond: _Condition, value: _Value) -> ColumnElement[float]:
    if value.kind != "number" or cond.op.endswith("like"):
        _number(cond, value)  # the one sentence for a number compared the wrong way
    return literal(float(value.value), Float())  # the index holds doubles, on both backends


_JSON_KINDS = {"number": _json_number, "string": _text, "bool": _json_bool}


def _json(kind: str, cond: _Condition) -> ColumnElement[bool]:
    """A condition on a param or metric, answered by the `run_values` indexes (the JSON only for long texts)."""
    key = cond.key or ""
    if not key or '"' in key:
        _fail(cond.at, f"{cond.field} is not a usable key; keys must be non-empty and free of double quotes.")
    plain, boolean, long = KINDS[kind]
    if not cond.values:  # JSON nulls have no row: "is null" is "has no row for the key"
        present = _holds(RunValue, and_(RunValue.kind.in_(KINDS[kind]), RunValue.key == key))
        return present if cond.op == "is not null" else not_(present)
    groups: dict[str, list[Any]] = {}
    for value in cond.values:
        groups.setdefault(value.kind, []).append(_JSON_KINDS[value.kind](cond, value))
    # a value has one JSON kind, so a run matches when the comparison holds for the values of its kind
    parts = []
    for value_kind, values in groups.items():
        code, column = {"number": (plain, RunValue.number), "bool": (boolean, RunValue.number)}.get(
            value_kind, (plain, RunValue.text)
        )
        parts.append(
            _holds(RunValue, and_(RunValue.kind == code, RunValue.key == key, _apply(column, cond.op, values)))
        )
        if value_kind == "string":  # texts too long for the index are checked against the JSON, run by run
            stored = _JsonText(getattr(Run, kind), literal(key, String()))
            longs = select(RunValue.run_id).where(RunValue.kind == long, RunValue.key == key)
            parts.append(and_(Run.id.in_(longs), _apply(stored, cond.op, values)))
    return or_(*parts)


_FIELDS: dict[str, Callable[[_Condition], ColumnElement[bool]]] = {
    "metrics": partial(_json, "metrics"),
    "params": partial(_json, "params"),
    "tags": _tag,
    "status": _status,
    "name": partial(_column, Run.name, _text),
    "experiment": partial(_column, Experiment.name, _text),
    "code_version": partial(_column, Run.code_version, _text),
    "host": partial(_column, Run.host, _text),
    "id": partial(_column, Run.id, _number),
    "trial_number": partial(_column, Run.trial_number, _number),
    "started_at": partial(_column, Run.started_at, _time),
    "finished_at": partial(_column, Run.finished_at, _time),
    "sweep": _sweep,
    "dataset": _dataset,
}
_KEYED = {"metrics", "params", "tags"}


# -- the search box and the one WHERE of every runs view ---------------------------------------------

MAX_SEARCH_WORDS = 8


class _WordPrefix(FunctionElement):
    """`run_words.word` starts with a word: a range on SQLite (binary order), LIKE on PostgreSQL (text_pattern_ops)."""

    # untyped on purpose: typed Boolean, SQLAlchemy would compare it with 1 on SQLite, hiding the range
    # from the index
    inherit_cache = True


@compiles(_WordPrefix)  # also what str(filter) shows
@compiles(_WordPrefix, "sqlite")
def _sqlite_prefix(element: _WordPrefix, compiler: Any, **kw: Any) -> str:
    column, low, high, _pattern = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({column} >= {low} AND {column} < {high})"


@compiles(_WordPrefix, "postgresql")
def _postgres_prefix(element: _WordPrefix, compiler: Any, **kw: Any) -> str:
    column, _low, _high, pattern = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({column} LIKE {pattern} ESCAPE '\\')"


def compile_search(text: str, frequent: Callable[[ColumnElement[bool]], bool] | None = None) -> ColumnElement[bool]:
    """The runs with every word of `text` (case-insensitive) starting a word of their name, experiment,
    sweep, tags, notes or param values; blank means every run.

    Args:
        text: what was typed in the search box.
        frequent: tells whether a word (its condition on `run_words.word`) starts words of many runs. A
            rare word is looked up once and its runs fetched by id; a frequent one is checked run by run
            (the run's own words, by primary key) as runs are read in sort order, so a page can stop early
            instead of collecting every run with, say, `trial`. Without it every word is looked up once.

    Raises:
        FilterError: more than `MAX_SEARCH_WORDS` words, or text longer than `MAX_LENGTH` characters.
    """
    if len(text) > MAX_LENGTH:
        _fail(MAX_LENGTH + 1, f"the search is longer than {MAX_LENGTH} characters; shorten it.")
    wanted = sorted(search_terms(text.replace("\0", " ")), key=len, reverse=True)
    if len(wanted) > MAX_SEARCH_WORDS:
        raise FilterError(f"Search for at most {MAX_SEARCH_WORDS} words at a time.", 1)
    clauses = []
    for word in wanted:
        if any("\ud800" <= char <= "\udfff" for char in word):
            continue  # a lone surrogate cannot be stored, so no stored word holds one
        pattern = re.sub(r"([\\%_])", r"\\\1", word) + "%"
        bounds = (literal(word, String()), literal(word + "\U0010ffff", String()), literal(pattern, String()))
        token = _FREQUENT.set(frequent)
        try:
            clauses.append(_holds(RunWord, _WordPrefix(RunWord.word, *bounds)))
        finally:
            _FREQUENT.reset(token)
    return and_(*clauses) if clauses else true()


def runs_where(
    filter: str | None = "", search: str | None = "", frequent: Callable[[ColumnElement[bool]], bool] | None = None
) -> ColumnElement[bool]:
    """The WHERE clause of every runs view: the filter language and the search box together.

    Raises:
        FilterError: the filter or the search does not compile.
    """
    return and_(compile_filter(filter or "", frequent), compile_search(search or "", frequent))
