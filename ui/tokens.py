"""Pieces of the access tokens page: the tokens as a table (never the tokens themselves, which the store does
not keep)."""

from __future__ import annotations

import pandas as pd

from tracking.governance import TokenRecord

COLUMNS = ["id", "name", "account", "sweep", "state", "created (UTC)", "expires (UTC)", "last used (UTC)"]


def _when(moment: object) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def tokens_frame(tokens: list[TokenRecord]) -> pd.DataFrame:
    """Tokens, newest first as given: name, account, the sweep a worker token is scoped to, state and dates."""
    return pd.DataFrame(
        [
            {"id": t.id, "name": t.name, "account": t.user, "sweep": "" if t.sweep_id is None else str(t.sweep_id),
             "state": t.state, "created (UTC)": _when(t.created_at), "expires (UTC)": _when(t.expires_at),
             "last used (UTC)": _when(t.last_used_at)}
            for t in tokens
        ],
        columns=COLUMNS,
    )  # fmt: skip


def token_label(token: TokenRecord) -> str:
    """A token as a choice in a list: "12 · laptop scripts (ana)"."""
    return f"{token.id} · {token.name} ({token.user})"
