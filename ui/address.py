"""What the pages read from the address (`?id=3&sort=...`): checked once, a bad value reported in one sentence.

`clean_address` (run by the frame on every page) leaves out any query parameter holding a control character
(a NUL cannot even be stored in PostgreSQL text) or longer than an address should be; `query_id` reads an id
through the library's `parse_id`. The sentence goes on the page, escaped; the page carries on without it.
"""

from __future__ import annotations

import streamlit as st

import tracking
from tracking.explore import escape_markdown, parse_id

MAX_VALUE = 4000  # characters: a filter or a column list fits easily; anything longer was not typed


def clean_address() -> None:
    """Leave out the query parameters with a control character or an overlong value, saying so once each."""
    for name in list(st.query_params):
        values = st.query_params.get_all(name)
        bad = next((v for v in values if len(v) > MAX_VALUE or any(ord(c) < 32 or ord(c) == 127 for c in v)), None)
        if bad is None:
            continue
        why = "is too long" if len(bad) > MAX_VALUE else "holds a control character"
        del st.query_params[name]
        problem(f"The address's {name[:40]!r} value {why}, so it was left out.")


def query_id(what: str, name: str = "id") -> int | None:
    """The id in the address's `name` parameter: None when there is none, or when it is not an id (said once)."""
    raw = str(st.query_params.get(name, "")).strip()
    if not raw:
        return None
    try:
        return parse_id(raw, what)
    except tracking.ValidationError as err:
        problem(str(err))
        return None


def problem(sentence: str) -> None:
    """A sentence about what the address asked for, shown as the text it is."""
    st.warning(escape_markdown(sentence), icon=":material/link_off:")
