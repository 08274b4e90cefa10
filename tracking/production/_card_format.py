"""How a model card writes values: numbers and times for people, escaped markdown table cells, written
markdown as a block of its own, and escaped HTML cells and sections."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from tracking.explore import escape_html, markdown_html

NOT_WRITTEN = "_Not written yet._"
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)$")
# CommonMark HTML blocks that a blank line does not end, only their end marker (None: the tag's closing tag).
_HTML_BLOCKS = [
    (re.compile(r" {0,3}<(script|pre|style|textarea)(?:\s|>|$)", re.IGNORECASE), None),
    (re.compile(r" {0,3}<!--"), "-->"),
    (re.compile(r" {0,3}<\?"), "?>"),
    (re.compile(r" {0,3}<!\[CDATA\["), "]]>"),
    (re.compile(r" {0,3}<![A-Za-z]"), ">"),
]
_WRAP = ' style="white-space:normal;min-width:14rem"'  # long sentences wrap instead of widening the table


def _number(value: Any) -> str:
    """A score or threshold for people: four decimals, thousands separated; '—' when undefined."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4f}"
    return str(value)


def _when(moment: datetime | str | None) -> str:
    """A time stamp to the second, in UTC."""
    if moment is None:
        return "—"
    if isinstance(moment, str):  # audit events keep ISO text
        return moment[:19].replace("T", " ") + " UTC"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(value: Any) -> str:
    """Text that stays inside one markdown table cell: backslashes and pipes escaped, line breaks as spaces."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.splitlines()).strip() or " "


def _code_cell(value: str) -> str:
    return f"`{_cell(value)}`" if "`" not in value else _cell(value)


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A markdown table; the cells must already be escaped (`_cell`)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _block(text: str) -> str:
    """Written markdown as its own block: a code fence or HTML block left open is closed, so it cannot swallow
    the sections after it."""
    text = (text or "").lstrip("\n").rstrip()  # not the first line's indentation: it is markdown too
    if not text:
        return NOT_WRITTEN
    fence, html_end = None, None
    for line in text.splitlines():
        if fence is not None:
            found = _FENCE.match(line)
            if found and found[1][0] == fence[0] and len(found[1]) >= len(fence) and not found[2].strip():
                fence = None
        elif html_end is not None:
            if html_end in line.lower():
                html_end = None
        elif (found := _FENCE.match(line)) and not (found[1][0] == "`" and "`" in found[2]):
            fence = found[1]
        else:
            html_end = _open_html_block(line)
    closer = fence or html_end
    return f"{text}\n{closer}" if closer else text


def _open_html_block(line: str) -> str | None:
    """The end marker of an HTML block that starts on this line and does not end on it, else None."""
    for pattern, end in _HTML_BLOCKS:
        if found := pattern.match(line):
            end = end or f"</{found[1].lower()}>"
            return None if end in line[found.end() :].lower() else end
    return None


def _html_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """An HTML table; the cells are already-built `<td>` elements."""
    header = "".join(f"<th>{escape_html(h)}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join('<tr>' + ''.join(row) + '</tr>' for row in rows)}</table>"


def _td(value: Any, numeric: bool = False, wrap: bool = False) -> str:
    attributes = (' class="num"' if numeric else "") + (_WRAP if wrap else "")
    return f"<td{attributes}>{escape_html(value)}</td>"


def _td_verdict(passed: bool, state: str = "") -> str:
    if state == "not applicable":  # nothing to compare with: neither a pass nor a failure
        return "<td>– not applicable</td>"
    return f'<td class="{"better" if passed else "worse"}">{"✓ passed" if passed else "✗ FAILED"}</td>'


def _written_html(text: str) -> str:
    return markdown_html(text) if (text or "").strip() else "<p><em>Not written yet.</em></p>"


def _section(title: str, *content: str) -> str:
    return f"<section><h2>{escape_html(title)}</h2>{''.join(content)}</section>"


def _meta(text: str) -> str:
    return f'<p class="meta">{escape_html(text)}</p>'
