"""The CLI's `server` command (the tracking server) and the remote mode of `worker`.

`server` opens the store (`--store`, `TRACKING_STORE_URL` or `TRACKING_HOME`) and serves its API over HTTP:
only the server holds the database credentials. `worker --server URL` (or `worker` with
`TRACKING_SERVER_URL` set) runs a sweep's trials through such a server with the token in `TRACKING_TOKEN`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tracking._settings import setting
from tracking.cli._serving import LOOPBACK, _port
from tracking.store import open_store


def add_parsers(sub: Any, store: argparse.ArgumentParser) -> None:
    """Add the `server` command to the top-level subparsers."""
    server = sub.add_parser("server", parents=[store],
                            help="the tracking server: scripts and workers log over HTTP with a token")  # fmt: skip
    server.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    server.add_argument("--port", type=_port, default=8765, help="the port to listen on (default 8765)")


def cmd_server(args: argparse.Namespace) -> int:
    """`server`: serve the store's API until interrupted."""
    from tracking.governance import has_accounts
    from tracking.server import serve  # FastAPI loads only for this command

    store = open_store(getattr(args, "store", None))
    if not has_accounts(store) and args.host not in LOOPBACK:
        print(f"warning: serving on {args.host} a store without accounts: anyone who can reach it can write to it "
              "(create an admin with `python -m tracking users add`)", file=sys.stderr)  # fmt: skip
    serve(store, host=args.host, port=args.port)
    return 0


def remote_url(args: argparse.Namespace) -> str | None:
    """The tracking server a `worker` goes through: `--server`, else `TRACKING_SERVER_URL` unless `--store` is given."""
    if getattr(args, "server", None):
        return args.server
    return None if getattr(args, "store", None) else setting("TRACKING_SERVER_URL")


def cmd_remote_worker(args: argparse.Namespace, url: str) -> int:
    """`worker` through a tracking server: no store, only the server's address and `TRACKING_TOKEN`."""
    from tracking.remote import connect_server
    from tracking.sweeps import run_remote_worker

    ran = run_remote_worker(connect_server(url), args.sweep, max_trials=args.trials)
    print(f"worker finished: ran {ran} trial(s) of sweep {args.sweep} through {url}")
    return 0


COMMANDS = {"server": cmd_server}
