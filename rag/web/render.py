"""HTML of the page: the transcript with clickable `[n]` badges and the sources panel.

All document and model text is untrusted and goes through `esc()` before it reaches the page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

from rag.config import Settings
from rag.events import AnswerResult, Citation
from rag.security import redact
from rag.text import CITATION, mark_numbers
from rag.web.state import ChatTurn

REFUSAL_LABEL = "Not in your documents"
EMPTY_CHAT = '<div class="rag-empty">Ask a question about your documents.</div>'


def esc(text: object) -> str:
    """html.escape, plus the template characters gr.HTML might otherwise interpret."""
    escaped = html.escape(str(text), quote=True)
    return escaped.replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;")


def render_answer_text(text: str, cited: Iterable[int], turn: int) -> str:
    """Escaped answer text whose `[n]` markers become badges linking to passage `n`."""
    known = set(cited)

    def badge(match: re.Match[str]) -> str:
        numbers = mark_numbers(match.group(0))
        if not all(n in known for n in numbers):
            return match.group(0)
        return "".join(
            f'<a class="cite" href="#src-{turn}-{n}" data-n="{n}">[{n}]</a>' for n in numbers
        )

    return CITATION.sub(badge, esc(text)).replace("\n", "<br>")


def highlight_span(citation: Citation) -> str:
    """The chunk text, escaped, with the supporting span wrapped in <mark>."""
    text = citation.text
    start = max(0, min(len(text), citation.start - citation.chunk_start))
    end = max(start, min(len(text), citation.end - citation.chunk_start))
    if start == end:
        return esc(text)
    return f"{esc(text[:start])}<mark>{esc(text[start:end])}</mark>{esc(text[end:])}"


def cited(result: AnswerResult) -> list[Citation]:
    """The citations to show: none for a refusal or an error, one per number, in order."""
    if result.refused or result.error:
        return []
    unique = {c.n: c for c in reversed(result.citations)}
    return [unique[n] for n in sorted(unique)]


def render_sources(result: AnswerResult | None, turn: int) -> str:
    """The sources panel: the cited passages only, each collapsible, span highlighted."""
    if result is None:
        return ""
    citations = cited(result)
    if not citations:
        return '<div class="rag-sources"><p class="rag-none">No sources.</p></div>'
    items = []
    for c in citations:
        meta = esc(c.published) if c.published else ""
        items.append(
            f'<details class="src" id="src-{turn}-{c.n}" data-n="{c.n}">'
            f'<summary>[{c.n}] {esc(c.title)}<span class="meta">{meta}</span></summary>'
            f'<div class="passage">{highlight_span(c)}</div></details>'
        )
    return f'<div class="rag-sources"><h4>Sources</h4>{"".join(items)}</div>'


def _searched(question_used: str) -> str:
    if not question_used:
        return ""
    return (
        '<details class="searched"><summary>searched for</summary>'
        f'<span class="question-used">{esc(question_used)}</span></details>'
    )


def render_turn(turn: ChatTurn, index: int) -> str:
    """One question and its answer: streaming, final, refused or failed."""
    result = turn.result
    if turn.error is not None:
        css, label = "error", '<span class="rag-label">Error</span>'
        body = esc(turn.error)
    elif result is None:
        css, label, body = "pending", "", esc(turn.answer).replace("\n", "<br>") or "…"
    elif result.refused:
        css, label = "refused", f'<span class="rag-label">{REFUSAL_LABEL}</span>'
        body = esc(result.answer).replace("\n", "<br>")
    else:
        css, label = "answered", ""
        body = render_answer_text(result.answer, [c.n for c in cited(result)], index)
    return (
        f'<div class="rag-turn" data-turn="{index}"><div class="rag-q">{esc(turn.question)}</div>'
        f'<div class="rag-a {css}">{label}<span class="answer-text">{body}</span>'
        f"{_searched(turn.question_used)}</div></div>"
    )


def render_transcript(turns: Sequence[ChatTurn]) -> str:
    """The whole conversation of this session."""
    if not turns:
        return EMPTY_CHAT
    return "".join(render_turn(t, i) for i, t in enumerate(turns))


def error_message(error: str, settings: Settings | None = None) -> str:
    """A clear message for a failed LLM call; the page stays usable."""
    return (
        f"The language model endpoint failed: {redact(error, settings)}. "
        "Check that it is running and reachable, then ask again."
    )
