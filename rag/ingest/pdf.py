"""PDF text page by page (pdfium), with running headers, footers and page numbers removed,
soft hyphens and hard line wraps repaired, and the outline kept as headings.

pdfium keeps the spaces between words and the reading order that pypdf loses on many real
manuals, and it is an order of magnitude faster; what no reader does (headers repeated on every
page, wrapped lines) is done here."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rag.ingest.structure import MAX_HEADING_CHARS, Heading

# A line at the top or bottom of this many pages, digits aside, is a running header or footer.
MIN_REPEATS = 3
EDGE_LINES = 2  # lines at each end of a page that may be a header or footer
_PAGE_NUMBER = re.compile(
    r"^\s*(page\s+)?(\d{1,4}|[ivxlcdm]{1,8})(\s*(/|of)\s*\d{1,4})?\s*$", re.IGNORECASE
)
_LIST_OR_HEADING = re.compile(r"^\s*([•◦▪‣*·–-]\s|\d+(\.\d+)*\.?\s|[a-z]\)\s|\[)")
_SENTENCE_END = re.compile(r"[.!?:;)\]]$")


@dataclass
class PdfText:
    pages: list[str]  # cleaned text of each page, 1-based page i at index i - 1
    headings: list[tuple[int, int, str]]  # (0-based page, level, title) from the outline
    title: str | None


def read_pdf(path: Path) -> PdfText:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        raw = []
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            raw.append(textpage.get_text_range())
            textpage.close()
            page.close()
        outline = []
        for item in pdf.get_toc(max_depth=6):
            dest = item.get_dest()
            title = (item.get_title() or "").strip()
            if dest is not None and dest.get_index() is not None and title:
                outline.append((dest.get_index(), item.level + 1, title))
        title = _plausible_title(pdf.get_metadata_dict().get("Title") or "")
    finally:
        pdf.close()
    lines = [_page_lines(text) for text in raw]
    repeated = _running_lines(lines)
    pages = [_join_lines([ln for ln in page if not _is_edge_noise(ln, repeated)]) for page in lines]
    return PdfText(pages=pages, headings=outline, title=title)


def _plausible_title(title: str) -> str | None:
    """The metadata title, unless it is a converter's placeholder ("Microsoft Word - a.doc",
    "untitled", a file name)."""
    title = " ".join(title.split())
    if not title or re.search(r"(?i)^untitled|microsoft word|\.(docx?|tex|dvi|pdf|odt)$", title):
        return None
    return title


def _page_lines(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # pdfium marks a hyphen it removed at a line end as U+FFFE; U+00AD is a soft hyphen
    text = text.replace("\ufffe", "").replace("\u00ad", "").replace("\u00a0", " ")
    text = text.replace("\x00", "")
    return [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]


def _shape(line: str) -> str:
    return re.sub(r"\d+", "#", line.strip().lower())


def _edges(lines: list[str]) -> list[str]:
    content = [ln for ln in lines if ln]
    return content[:EDGE_LINES] + content[-EDGE_LINES:]


def _running_lines(pages: list[list[str]]) -> set[str]:
    """Shapes of lines that head or foot at least MIN_REPEATS pages."""
    counts = Counter(shape for page in pages for shape in {_shape(ln) for ln in _edges(page)})
    needed = MIN_REPEATS if len(pages) > MIN_REPEATS + 1 else 2
    return {shape for shape, count in counts.items() if count >= needed and len(pages) > 1}


def _is_edge_noise(line: str, repeated: set[str]) -> bool:
    return bool(line) and (_shape(line) in repeated or bool(_PAGE_NUMBER.match(line)))


def _join_lines(lines: list[str]) -> str:
    """Undo hard wraps: a line runs on into the next unless it ends a sentence short of the
    usual width, is short itself (a heading, code, the end of a paragraph), or the next line
    starts a list item or heading. Blank lines stay paragraph breaks."""
    lengths = [len(ln) for ln in lines if ln]
    if not lengths:
        return ""
    width = statistics.median(lengths)
    out: list[str] = []
    for line in lines:
        if not line:
            if out and out[-1] != "\n\n":
                out.append("\n\n")
            continue
        if out and out[-1] not in ("\n", "\n\n"):
            previous = out[-1]
            runs_on = (
                len(previous) >= 0.75 * width
                and not (_SENTENCE_END.search(previous) and len(previous) < 0.9 * width)
                and not _LIST_OR_HEADING.match(line)
            )
            if runs_on:
                # a hard hyphen at the wrap stays ("non-" + "blocking"); pdfium already
                # dropped the hyphens it added itself
                out[-1] = previous + ("" if previous.endswith("-") else " ") + line
                continue
            out.append("\n")
        out.append(line)
    return "".join(out).strip()


_QUOTES = str.maketrans({c: "'" for c in "‘’‚‛′`´"} | {c: '"' for c in "“”„‟″"})
_DASHES = re.compile(r"[‐‑‒–—―−]")
# what may stand before a title on its line: "2.4", "A.1", "IV." (spacing removed)
_SECTION_NUMBER = re.compile(r"(?:\d+(?:\.\d+)*\.?|[A-Z](?:\.\d+)*\.?|[IVXLC]+\.?)?")


def _plain(text: str) -> str:
    """A title as compared: case, quote and dash styles and all spacing aside."""
    return "".join(_DASHES.sub("-", text.translate(_QUOTES)).lower().split())


def _title_line(text: str, title: str) -> tuple[str, int] | None:
    """The line of `text` that sets `title` (maybe after its section number), and its offset."""
    wanted = _plain(title)
    if not wanted:
        return None
    for match in re.finditer(r"[^\n]+", text):
        line = match.group(0)
        plain = _plain(line)
        if plain.endswith(wanted) and _SECTION_NUMBER.fullmatch(
            plain[: len(plain) - len(wanted)].upper()
        ):
            return line.strip(), match.start() + len(line) - len(line.lstrip())
    return None


def heading_offsets(
    page_texts: list[str], page_starts: list[int], outline: list[tuple[int, int, str]]
) -> list[Heading]:
    """The outline as headings at offsets in the joined text: at the line of the heading's
    page that carries its title (with its number, "2.4 Control Flags", when the page has one),
    else at the page's start. Titles are compared as typography aside: a bookmark often spells
    its title plainer than the page sets it ("Automake's" / "Automake’s", "LaTeX2e" /
    "LATEX 2ε" spacing), and a heading put at its page's start lands out of order."""
    headings = []
    for index, level, title in outline:
        if not 0 <= index < len(page_texts):
            continue
        text, start = page_texts[index], page_starts[index]
        shown, at = title, 0
        if found := _title_line(text, title):
            shown, at = found
        headings.append(Heading(start + at, level, shown[:MAX_HEADING_CHARS]))
    return sorted(headings, key=lambda h: h.start)
