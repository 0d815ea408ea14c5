"""Where a place in a document is: its page (paged formats) and its section (heading path).

Readers record page starts and headings as character offsets into the cleaned text; chunks and
citations look their page and section up here, so a citation can say "p. 7 · 2.4 Control
Flags" and the page can open the document there."""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass

SECTION_SEPARATOR = " > "
MAX_HEADING_CHARS = 120


@dataclass(frozen=True)
class Heading:
    start: int  # offset of the heading line in the cleaned text
    level: int  # 1 = top
    title: str


def page_at(pages: tuple[int, ...] | list[int], offset: int) -> int | None:
    """1-based page holding `offset`, given each page's start offset (empty: not paged)."""
    if not pages:
        return None
    return max(1, bisect.bisect_right(pages, offset))


def section_at(headings: tuple[Heading, ...] | list[Heading], offset: int) -> str | None:
    """The heading path ("Options > Version option") in force at `offset`: the path after the
    headings up to the first one that starts past it. For many offsets, use `Sections`."""
    return Sections(headings).at(offset)


class Sections:
    """`section_at` for many offsets of one heading list: the path after each heading is
    built once, and a lookup is a binary search (a chunk-by-chunk scan of a long manual's
    headings grows with chunks × headings)."""

    def __init__(self, headings: tuple[Heading, ...] | list[Heading]) -> None:
        self.headings = headings
        # The headings read for an offset run up to the first that starts past it: the first
        # whose running maximum start passes it, which a binary search finds in any order.
        self._reach: list[int] = []
        self._paths: list[str | None] = [None]  # the path after the first i headings
        path: list[Heading] = []
        reach = None
        for heading in headings:
            reach = heading.start if reach is None else max(reach, heading.start)
            self._reach.append(reach)
            while path and path[-1].level >= heading.level:
                path.pop()
            path.append(heading)
            self._paths.append(SECTION_SEPARATOR.join(h.title for h in path) or None)

    def at(self, offset: int) -> str | None:
        return self._paths[bisect.bisect_right(self._reach, offset)]


_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"^(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# "2. Configuration issues", "2.6. How can I …": a numbered heading line in plain text
_NUMBERED = re.compile(r"^(\d+(?:\.\d+)*)\.?[ \t]+\S.*$")


def markdown_headings(text: str) -> list[Heading]:
    """ATX (`## Title`) and setext (underlined) headings, outside fenced code."""
    headings, offset, in_code, previous = [], 0, False, ""
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
        elif not in_code:
            if match := _ATX.match(line):
                headings.append(Heading(offset, len(match.group(1)), match.group(2).strip()))
            elif _SETEXT.match(line) and previous.strip() and not previous.startswith(" "):
                level = 1 if line.startswith("=") else 2
                start = offset - len(previous) - 1
                headings.append(Heading(start, level, previous.strip()))
        previous = line
        offset += len(line) + 1
    return [h for h in headings if len(h.title) <= MAX_HEADING_CHARS]


def numbered_headings(text: str) -> list[Heading]:
    """Numbered heading lines of plain text ("3.2. Are NTP servers …"): unindented, standing
    alone between blank lines; the depth of the number is the level."""
    headings, offset = [], 0
    lines = text.split("\n")
    for i, line in enumerate(lines):
        alone = (i == 0 or not lines[i - 1].strip()) and (
            i + 1 == len(lines) or not lines[i + 1].strip()
        )
        if alone and len(line) <= MAX_HEADING_CHARS and (match := _NUMBERED.match(line)):
            headings.append(Heading(offset, match.group(1).count(".") + 1, line.strip()))
        offset += len(line) + 1
    return headings


def structure_json(document) -> str | None:
    """A document's pages and headings as one manifest field (None when it has neither), so
    a reindex from the stored text keeps them."""
    if not (document.pages or document.headings):
        return None
    headings = [[h.start, h.level, h.title] for h in document.headings]
    return json.dumps({"pages": list(document.pages), "headings": headings})


def structure_from_json(value: str | None) -> dict:
    """Keyword arguments for LoadedDocument from `structure_json`'s field."""
    if not value:
        return {}
    data = json.loads(value)
    return {
        "pages": tuple(data.get("pages", ())),
        "headings": tuple(Heading(*h) for h in data.get("headings", ())),
    }
