"""User text in markdown: names shown as the literal text they are, and notes that fetch nothing from outside.

The dashboard renders most strings as markdown (titles, captions, labels, alerts). Two functions keep user
text in its place there:

- `escape_markdown(value)`: a name, key, id, comment or value shown literally: the marks that would open
  something backslash-escaped (no emphasis, links, images, headings, lists, LaTeX `$…$`, `:red[…]` colours or
  `:icon:` directives from it), and a word joiner (U+2060, invisible) put into web addresses, e-mail addresses and
  `:emoji:` codes, which GitHub-flavoured markdown would otherwise turn into links and pictures from plain text.
- `local_markdown(text)`: notes and descriptions stay markdown, but an image, or a link to another host,
  becomes its own source text; only relative addresses (and the dashboard's own host) stay links and images.
  The text is parsed with markdown-it-py (CommonMark, as the browser's renderer); the result is parsed again
  and, should anything from outside remain, the whole text is shown escaped instead.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

WORD_JOINER = "\u2060"
_PUNCTUATION = frozenset(string.punctuation)
_ANYWHERE = frozenset("\\`*_{}[]<>~$:&")
_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)
_LINE_START = re.compile(r"^[ \t]*(?:[#>+\-=|]|\d{1,9}[.)])", re.MULTILINE)
# Where GitHub-flavoured markdown (remark-gfm, remark-emoji, Streamlit's icon syntax) would make something of
# plain text: a word joiner goes at the end of each match.
_LINK_BREAKS = r"https?:(?=//)|www(?=\.)|@(?=[-\w])"
_BREAKS = re.compile(_LINK_BREAKS + r"|:(?=[\w+-]+:)|:(?=material/|streamlit:)", re.IGNORECASE)
_NOTE_BREAKS = re.compile(_LINK_BREAKS, re.IGNORECASE)  # notes keep their :emoji: and :red[colours]
# What the browser's renderer makes a link of when it stands in text (checked in what `local_markdown` returns).
_AUTOLINKED = re.compile(r"https?://|www\.|[-.\w+]@[-\w]+\.\w", re.IGNORECASE)
_SPAN_RULES = ("link", "image", "autolink", "backticks")


def escape_markdown(value: Any) -> str:
    """`value` as markdown that shows exactly its text (None as an empty string).

    Escaped: the marks that open something anywhere in a line (emphasis, code, links and images, autolinks and
    HTML, entities, strikethrough, LaTeX, directives), and at the start of a line those that open a block
    (heading, quote, list, rule, table); a hyphen or full stop inside a word stays as it is.
    """
    text = "" if value is None else str(value).replace("\r\n", "\n").replace("\r", "\n")
    escape = {i for i, char in enumerate(text) if char in _ANYWHERE}
    escape.update(m.end() - 1 for m in _LINE_START.finditer(text))
    # a line's own indentation as character references: four spaces would make it a code block
    indents = {i: f"&#{ord(text[i])};" for m in _INDENT.finditer(text) for i in range(m.start(), m.end())}
    return _rebuild(text, escape, {m.end() for m in _BREAKS.finditer(text)}, set(), indents)


def local_markdown(text: str, own_hosts: Collection[str] = ()) -> str:
    """Markdown `text` with its images and links to other hosts (and bare web addresses) turned into plain text.

    Args:
        text: markdown written by a person (a note, a description).
        own_hosts: `host[:port]` names whose absolute http(s) addresses stay links (the dashboard's own).
    """
    source = _normalized(text)
    hosts = {host.lower() for host in own_hosts if host}
    try:
        rewritten = _rewrite(source, hosts)
    except _Unmapped:
        rewritten = None
    if rewritten is None or _outside(rewritten, hosts):
        return escape_markdown(source)
    return rewritten


def is_local_address(url: str, own_hosts: Collection[str] = ()) -> bool:
    """Whether the browser would fetch `url` from this dashboard (a relative address, or one of `own_hosts`)."""
    cleaned = re.sub(r"[\x00-\x20]", "", url).replace("\\", "/")
    cleaned = re.sub(r"%5c", "/", cleaned, flags=re.IGNORECASE)
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return False
    if parts.scheme:
        return parts.scheme.lower() in ("http", "https") and parts.netloc.lower() in own_hosts
    return not parts.netloc or parts.netloc.lower() in own_hosts


# -- parsing ------------------------------------------------------------------------------------------


class _Unmapped(Exception):
    """A piece of parsed text could not be found in the source (so it cannot be rewritten in place)."""


@dataclass(frozen=True)
class _Span:
    src: str  # the inline text the parser read (the same object as its inline token's content)
    rule: str
    start: int
    end: int
    target: str | None


def _normalized(text: str) -> str:
    # as markdown-it normalizes before parsing, so that positions in its inline text match the source
    return (text or "").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")


@functools.cache
def _parser() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: True  # the browser's renderer makes links of javascript: and data: too
    for rule in md.inline.ruler.__rules__:
        if rule.name in _SPAN_RULES:
            md.inline.ruler.at(rule.name, _recording(rule.name, rule.fn))
    return md


def _recording(name: str, parse: Any) -> Any:
    def rule(state: Any, silent: bool) -> bool:
        start, first = state.pos, len(state.tokens)
        found = parse(state, silent)
        if found and not silent:
            target = None
            for token in state.tokens[first:]:
                if token.type in ("link_open", "image"):
                    target = token.attrGet("href" if token.type == "link_open" else "src") or ""
                    break
            state.env.setdefault("spans", []).append(_Span(state.src, name, start, state.pos, target))
        return found

    return rule


def _parse(source: str) -> tuple[list[Any], list[_Span]]:
    env: dict[str, Any] = {}
    tokens = _parser().parse(source, env)
    return tokens, env.get("spans", [])


# -- rewriting ------------------------------------------------------------------------------------------


def _rewrite(source: str, hosts: set[str]) -> str:
    tokens, spans = _parse(source)
    lines = source.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    escape: set[int] = set()
    breaks: set[int] = set()
    skipped: set[int] = set()
    cursor: dict[int, int] = {}  # per source line: where the next table cell may start
    opener = None
    for token in tokens:
        if token.type != "inline":
            opener = token
            continue
        if not token.content or token.map is None:
            continue
        mine = [s for s in spans if s.src is token.content]
        outside = [
            s for s in mine if s.rule in ("link", "image", "autolink") and not is_local_address(s.target or "", hosts)
        ]
        kept = [s for s in mine if s not in outside]
        wanted = set()
        for span in outside:
            wanted.update(range(span.start, span.end))
        marks = {m.end() for m in _NOTE_BREAKS.finditer(token.content)}
        marks = {m for m in marks if m in wanted or not any(s.start < m < s.end for s in kept)}
        if not wanted and not marks:
            continue
        in_cell = opener is not None and opener.type in ("th_open", "td_open")
        heading = opener is not None and opener.type == "heading_open" and opener.markup.startswith("#")
        positions, backslashes = _positions(token.content, lines, starts, token.map[0], in_cell or heading, cursor)
        escape.update(positions[i] for i in wanted)
        breaks.update(positions[i] for i in marks)  # a break never ends the text: each pattern looks ahead
        skipped.update(backslashes)
    return _rebuild(source, escape, breaks, skipped)


def _positions(
    content: str, lines: list[str], starts: list[int], first_line: int, search: bool, cursor: dict[int, int]
) -> tuple[list[int], set[int]]:
    """Where each character of an inline text is in the source, and the backslashes a table cell dropped."""
    positions: list[int] = []
    skipped: set[int] = set()
    parts = content.split("\n")
    for offset, part in enumerate(parts):
        number = first_line + offset
        if number >= len(lines):
            raise _Unmapped
        line = lines[number]
        if search:  # a table cell or an ATX heading: somewhere in its line
            candidates = [i for i in range(cursor.get(number, 0), len(line)) if part and line[i] == part[0]]
        else:  # a paragraph's line is the end of its source line (the last one without trailing blanks)
            end = len(line.rstrip()) if offset == len(parts) - 1 else len(line)
            candidates = [end - len(part)]
        for start in candidates:
            aligned = _align(part, line, start)
            if aligned is not None:
                found, dropped = aligned
                break
        else:
            if part:
                raise _Unmapped
            found, dropped = [], []
        if search and found:
            cursor[number] = found[-1] + 1
        positions += [starts[number] + i for i in found]
        skipped.update(starts[number] + i for i in dropped)
        if offset < len(parts) - 1:
            positions.append(starts[number] + len(line))  # the line break
    return positions, skipped


def _align(part: str, line: str, start: int) -> tuple[list[int], list[int]] | None:
    if start < 0:
        return None
    found, dropped, at = [], [], start
    for char in part:
        if at < len(line) and line[at] == "\\" and char == "|" and line[at + 1 : at + 2] == "|":
            dropped.append(at)  # a table cell's escaped pipe: markdown-it drops the backslash
            at += 1
        if at >= len(line) or line[at] != char:
            return None
        found.append(at)
        at += 1
    return found, dropped


def _rebuild(
    source: str, escape: set[int], breaks: set[int], skipped: set[int], swap: dict[int, str] | None = None
) -> str:
    out = []
    for i, char in enumerate(source):
        if i in breaks:
            out.append(WORD_JOINER)
        if swap and i in swap:
            out.append(swap[i])
            continue
        if i in escape and char in _PUNCTUATION and not (char == "|" and i - 1 in skipped):
            out.append("\\")
        out.append(char)
    if len(source) in breaks:
        out.append(WORD_JOINER)
    return "".join(out)


def _outside(markdown: str, hosts: set[str]) -> bool:
    """Whether rendering `markdown` would show an image or a link to another host, or make one of plain text."""
    tokens, _ = _parse(markdown)
    for token in tokens:
        depth = 0
        for child in token.children or ():
            if child.type == "image" and not is_local_address(child.attrGet("src") or "", hosts):
                return True
            if child.type == "link_open":
                depth += 1
                if not is_local_address(child.attrGet("href") or "", hosts):
                    return True
            elif child.type == "link_close":
                depth -= 1
            elif child.type == "text" and not depth and _AUTOLINKED.search(child.content):
                return True
    return False
