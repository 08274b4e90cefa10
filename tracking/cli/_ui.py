"""The CLI's `ui` command: start the dashboard (`streamlit run app.py`) from any folder.

The dashboard's files (app.py, pages/, ui/, .streamlit/config.toml) live at the repository root; a
non-editable install carries a copy in `tracking/_dashboard/` (setup.py puts it there). Streamlit reads
`.streamlit/config.toml` from the current folder, not from beside app.py, so the settings of the file
shipped with the dashboard go to `streamlit run` as flags; arguments given after `--` come last and win.
Streamlit runs as its own program (`python -m streamlit`): the library never imports it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from tracking._errors import ValidationError
from tracking.cli._serving import _port

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# The installed copy first; then the checkout this package runs from (`python -m tracking`, `pip install -e .`).
DASHBOARD_DIRS = (PACKAGE_DIR / "_dashboard", PACKAGE_DIR.parent)


def add_parsers(sub: Any, store: argparse.ArgumentParser) -> None:
    """Add the `ui` command to the top-level subparsers."""
    ui = sub.add_parser("ui", parents=[store], help="start the dashboard in Streamlit (stop it with Ctrl-C)",
                        description="Start the dashboard: `streamlit run app.py` with the dashboard's own settings, "
                        "from any folder. Arguments after `--` go to `streamlit run` as they are, e.g. "
                        "`tracking ui -- --server.baseUrlPath tracking`.")  # fmt: skip
    ui.add_argument(
        "--port", type=_port, help="the port to listen on (default: Streamlit's, 8501 or the next free one)"
    )
    ui.add_argument(
        "--address", metavar="HOST", help="the address to listen on (default: Streamlit's, every interface)"
    )
    ui.add_argument("streamlit_args", nargs="*", metavar="-- STREAMLIT_ARGS", help="more `streamlit run` options")


def dashboard_dir() -> Path:
    """The folder of the dashboard's app.py, pages/ and ui/.

    Raises:
        ValidationError: neither the installed copy nor a checkout's files are there.
    """
    for folder in DASHBOARD_DIRS:
        if (folder / "app.py").is_file() and (folder / "pages").is_dir() and (folder / "ui").is_dir():
            return folder
    raise ValidationError(
        f"The dashboard's files (app.py, pages/, ui/) are not installed with the tracking package in {PACKAGE_DIR}; "
        "reinstall it from a checkout of the project with `pip install .`."
    )


def config_options(path: Path) -> dict[str, list[str]]:
    """The settings of a Streamlit config.toml as `streamlit run` options: `[server] headless = true` gives
    {"server.headless": ["true"]} (a list setting gives one value per item, the flag repeated)."""
    with path.open("rb") as file:
        config = tomllib.load(file)
    options: dict[str, list[str]] = {}

    def add(prefix: str, table: dict[str, Any]) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                add(f"{prefix}{key}.", value)
            else:
                values = value if isinstance(value, list) else [value]
                options[prefix + key] = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]

    add("", config)
    return options


def dashboard_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The `streamlit run` command line and environment that start the dashboard for `ui`'s arguments."""
    folder = dashboard_dir()
    config = folder / ".streamlit" / "config.toml"
    options = config_options(config) if config.is_file() else {}
    options["server.headless"] = ["true"]  # never stop to ask for an e-mail, whatever the config says
    if args.port is not None:
        options["server.port"] = [str(args.port)]
    if args.address is not None:
        options["server.address"] = [args.address]
    extra = list(args.streamlit_args)
    if extra[:1] == ["--"]:  # argparse keeps a second `--`
        extra = extra[1:]
    flags = [f"--{name}={value}" for name, values in options.items() for value in values]
    # -P: the current folder does not go first on sys.path, so a `tracking/` or `ui/` folder where the
    # command is run cannot stand in for the installed package or the dashboard's own ui/.
    argv = [sys.executable, "-P", "-m", "streamlit", "run", str(folder / "app.py"), *flags, *extra]
    env = dict(os.environ)
    if args.store:
        env["TRACKING_STORE_URL"] = args.store  # the dashboard reads its store from the environment
    return argv, env


def cmd_ui(args: argparse.Namespace) -> int:
    """`ui`: replace this process with Streamlit serving the dashboard (so Ctrl-C and kill reach Streamlit)."""
    if importlib.util.find_spec("streamlit") is None:
        raise ValidationError("Streamlit is not installed in this Python environment; install it with `pip install streamlit`.")  # fmt: skip
    argv, env = dashboard_command(args)
    print(f"starting the dashboard: {shlex.join(['python', *argv[1:]])}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    if os.name != "posix":  # no exec that keeps the process id there: wait for Streamlit instead
        return subprocess.call(argv, env=env)
    os.execve(sys.executable, argv, env)
    return 0  # not reached


COMMANDS = {"ui": cmd_ui}
