"""Argument types shared by the commands: an id typed on the command line is checked like one in an address."""

from __future__ import annotations

import argparse

from tracking._errors import ValidationError
from tracking.explore import parse_id


def record_id(text: str) -> int:
    """An id or version number (1 to `MAX_ID`); anything else is argparse's one-line usage error."""
    try:
        return parse_id(text, "record")
    except ValidationError as err:
        raise argparse.ArgumentTypeError(str(err).replace("a record id", "an id")) from None
