"""The main text of an HTML page, with its headings.

Only what a reader sees is indexed: scripts, styles, templates, comments, hidden elements and
the page's navigation chrome are dropped, so neither their text nor instructions hidden in them
can be retrieved. Block elements become lines, table rows become "cell | cell" lines, and
preformatted text keeps its layout."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bs4 import BeautifulSoup, Comment, NavigableString, Tag

from rag.ingest.clean import clean_text
from rag.ingest.structure import MAX_HEADING_CHARS, Heading

_DROP = ["script", "style", "noscript", "template", "svg", "canvas", "iframe", "object",
         "head", "nav", "form", "button", "select", "textarea", "input"]  # fmt: skip
_BLOCKS = {
    "p", "div", "section", "article", "main", "aside", "header", "footer", "blockquote",
    "li", "ul", "ol", "dl", "dt", "dd", "table", "tr", "pre", "figure", "figcaption", "caption",
    "address", "hr", "br", "h1", "h2", "h3", "h4", "h5", "h6", "details", "summary",
}  # fmt: skip
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
# Private-use characters mark heading bounds in the flattened text; they never occur in HTML.
_OPEN, _CLOSE = "\ue000", "\ue001"


@dataclass
class HtmlText:
    text: str
    headings: list[Heading]
    title: str | None


def _hidden(tag: Tag) -> bool:
    if tag.attrs is None:
        return False
    return (
        tag.has_attr("hidden")
        or tag.get("aria-hidden") == "true"
        or bool(_HIDDEN_STYLE.search(str(tag.get("style") or "")))
    )


def read_html(data: bytes) -> HtmlText:
    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    for tag in soup.find_all(_DROP):
        tag.decompose()
    for tag in [t for t in soup.find_all(True) if _hidden(t)]:
        if not tag.decomposed:
            tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    for text in root.find_all(string=True):
        if not text.find_parent("pre"):
            text.replace_with(NavigableString(re.sub(r"\s+", " ", str(text))))
    for cell in root.find_all(["td", "th"]):
        cell.insert_after(" | ")
    for tag in root.find_all(True):
        if tag.name in _HEADINGS:
            tag.insert_before(f"\n{_OPEN}{_HEADINGS[tag.name]}")
            tag.insert_after(f"{_CLOSE}\n")
        elif tag.name in _BLOCKS:
            tag.insert_before("\n")
            tag.insert_after("\n")
    flat = root.get_text("")
    lines = [line.strip().removesuffix("|").strip() for line in flat.split("\n")]
    flat, _ = clean_text("\n".join(lines))
    text, headings = _take_headings(flat)
    return HtmlText(text=text, headings=headings, title=title or None)


def _take_headings(flat: str) -> tuple[str, list[Heading]]:
    out, headings, at = [], [], 0
    for match in re.finditer(rf"{_OPEN}(\d)(.*?){_CLOSE}", flat, re.DOTALL):
        out.append(flat[at : match.start()])
        title = re.sub(r"\s+", " ", match.group(2)).strip()
        start = sum(map(len, out))
        out.append(title)
        if title:
            headings.append(Heading(start, int(match.group(1)), title[:MAX_HEADING_CHARS]))
        at = match.end()
    out.append(flat[at:])
    text = "".join(out).replace(_OPEN, "").replace(_CLOSE, "")
    return text, headings
