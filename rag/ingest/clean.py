"""Cleaning a document's text before it is chunked.

The seed format's `date YYYY-MM-DD` header becomes `published` metadata, and navigation
boilerplate (lines that only advertise another article, "Also read: ...") is dropped, so it can
never be retrieved or cited. Chunk offsets index the cleaned text."""

from __future__ import annotations

import re

MAX_TITLE_CHARS = 90

_DATE_HEADER = re.compile(r"\A\s*date\s+(\d{4}-\d{2}-\d{2})\b[ \t]*")
_PROMO_LINE = re.compile(
    r"^\s*(also read|read also|read more|see also|also see|related|recommended|must read|"
    r"don'?t miss|you may also like|watch|listen)\s*[:|–—-]",
    re.IGNORECASE,
)


# nroff's bold ("P\bP") and underline ("_\bP") by overstriking, as man pages and many READMEs
# rendered from them (Debian's postfix-doc) carry: the reader sees the letter once.
_OVERSTRIKE = re.compile(r"[^\n\b]\x08(?=[^\n\b])")


def clean_text(raw: str) -> tuple[str, str | None]:
    """Normalise whitespace, undo overstriking, lift a leading `date YYYY-MM-DD` header,
    drop promo lines."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = _OVERSTRIKE.sub("", text)
    published = None
    if match := _DATE_HEADER.match(text):
        published = match.group(1)
        text = text[match.end() :]
    lines = [line.rstrip() for line in text.split("\n") if not _PROMO_LINE.match(line)]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    text = re.sub(r"[ \t]{2,}", " ", text)
    return text.strip(), published


def derive_title(text: str) -> str:
    """The first line (a Markdown heading's text), cut to its first sentence and a length."""
    first = next((line.strip() for line in text.split("\n") if line.strip()), "")
    first = first.lstrip("#").strip()
    first = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0]
    if len(first) <= MAX_TITLE_CHARS:
        return first
    return first[:MAX_TITLE_CHARS].rsplit(" ", 1)[0] + "…"
