"""The command line: `python -m tracking` and the `tracking` command."""

from tracking.cli._main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
