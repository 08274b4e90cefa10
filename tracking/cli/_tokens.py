"""The CLI's `tokens` command: create, list and revoke access tokens.

`tokens create` needs a password sign-in (`TRACKING_USER`, with `TRACKING_PASSWORD` or asked on the
terminal); it prints the token alone on standard output, once, so that
`export TRACKING_TOKEN=$(python -m tracking tokens create laptop)` works. `list` and `revoke` also take
a personal token in `TRACKING_TOKEN`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tracking.cli._governance import cli_actor
from tracking.governance import TokenRecord, create_sweep_token, create_token, list_tokens, revoke_token
from tracking.store import iso, open_store


def add_parsers(sub: Any, store: argparse.ArgumentParser) -> None:
    """Add the `tokens` command to the top-level subparsers."""
    tokens = sub.add_parser("tokens", help="access tokens for scripts, workers and the CLI (TRACKING_TOKEN)")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True, parser_class=type(tokens))
    create = tokens_sub.add_parser("create", parents=[store], help="create a token; it is printed once")
    create.add_argument("name", help="what the token is for, e.g. 'laptop scripts'")
    create.add_argument("--days", type=float, default=30, help="days until it expires (default 30, at most 365)")
    create.add_argument("--sweep", type=int, metavar="ID",
                        help="a token that may only log the runs of this sweep (for workers on other machines)")  # fmt: skip
    listing = tokens_sub.add_parser("list", parents=[store], help="your tokens with their last use")
    listing.add_argument("--all", action="store_true", help="admins: every account's tokens")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    revoke = tokens_sub.add_parser("revoke", parents=[store], help="revoke a token at once")
    revoke.add_argument("token", type=int, metavar="ID")


def _row(token: TokenRecord) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "account": token.user, "sweep": token.sweep_id,
            "state": token.state, "created_at": iso(token.created_at), "expires_at": iso(token.expires_at),
            "last_used_at": iso(token.last_used_at) if token.last_used_at else None}  # fmt: skip


def cmd_tokens(args: argparse.Namespace, print_table: Any) -> int:
    store = open_store(getattr(args, "store", None))
    actor = cli_actor(store)
    command = args.tokens_command
    if command == "create":
        if args.sweep is not None:
            token = create_sweep_token(store, actor, args.sweep, args.name)
            print(f"sweep token for sweep {args.sweep} (shown once; keep it secret)", file=sys.stderr)
        else:
            token, made = create_token(store, actor, args.name, args.days)
            print(f"token {made.id} {made.name!r} for {made.user}, expires {iso(made.expires_at)} "
                  "(shown once; keep it secret)", file=sys.stderr)  # fmt: skip
        print(token)
    elif command == "list":
        rows = [_row(token) for token in list_tokens(store, actor, everyone=args.all)]
        print(json.dumps(rows, indent=2)) if args.format == "json" else print_table(rows)
    else:
        revoked = revoke_token(store, actor, args.token)
        print(f"token {revoked.id} {revoked.name!r} of {revoked.user} revoked")
    return 0


COMMANDS = {"tokens": cmd_tokens}
