"""HTML of the page: the transcript with clickable `[n]` badges and the sources panel.

All document and model text is untrusted and goes through `esc()` before it reaches the page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence

from rag.config import Settings
from rag.events import AnswerResult, Citation, SentenceVerdict
from rag.security import redact
from rag.text import CITATION, mark_numbers, split_sentences, strip_citations
from rag.web.state import ChatTurn

REFUSAL_LABEL = "Not in your documents"
STOPPED_LABEL = "Stopped"
EMPTY_CHAT = '<div class="rag-empty">Ask a question about your documents.</div>'
# A kept sentence whose cited passages support it less than this is shown as weakly supported:
# the check let it through, the reader should look at its source before relying on it.
LOW_SUPPORT = 0.5


def esc(text: object) -> str:
    """html.escape, plus the template characters gr.HTML might otherwise interpret."""
    escaped = html.escape(str(text), quote=True)
    return escaped.replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;")


def _badges(text: str, known: set[int], turn: int) -> str:
    def badge(match: re.Match[str]) -> str:
        numbers = mark_numbers(match.group(0))
        if not all(n in known for n in numbers):
            return match.group(0)
        return "".join(
            f'<a class="cite" href="#src-{turn}-{n}" data-n="{n}" data-turn="{turn}">[{n}]</a>'
            for n in numbers
        )

    return CITATION.sub(badge, esc(text))


def _weak(sentences: Sequence[SentenceVerdict]) -> set[str]:
    return {
        _norm(s.text)
        for s in sentences
        if s.kept and s.support is not None and s.support < LOW_SUPPORT
    }


def _norm(text: str) -> str:
    return " ".join(strip_citations(text).split()).strip().lower()


def render_answer_text(
    text: str,
    cited: Iterable[int],
    turn: int,
    sentences: Sequence[SentenceVerdict] = (),
) -> str:
    """Escaped answer text whose `[n]` markers become badges linking to passage `n` of this
    turn; kept sentences with low support are wrapped in `<span class="weak">`."""
    known = set(cited)
    weak = _weak(sentences)
    lines = []
    for line in text.split("\n"):
        if not weak:
            lines.append(_badges(line, known, turn))
            continue
        parts = []
        for sentence in split_sentences(line):
            body = _badges(sentence, known, turn)
            if _norm(sentence) in weak:
                body = (
                    f'<span class="weak" title="weakly supported by its sources: '
                    f'check them">{body}</span>'
                )
            parts.append(body)
        lines.append(" ".join(parts))
    return "<br>".join(lines)


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


def source_location(citation: Citation, file_name: str | None = None) -> str:
    """Where a citation points, in words: "libtasn1.pdf · p. 7 · 2.4 Library Notes"."""
    return citation.location(file_name)


def _source(c: Citation, turn: int, files: Mapping[str, str]) -> str:
    meta = [f'<span class="where">{esc(source_location(c, files.get(c.doc_id)))}</span>']
    if c.published:
        meta.append(f'<span class="date">{esc(c.published)}</span>')
    if c.support is not None:
        low = " low" if c.support < LOW_SUPPORT else ""
        meta.append(f'<span class="support{low}">support {c.support:.2f}</span>')
    where = f"Open page {c.page}" if c.page is not None else "Open the document here"
    return (
        f'<details class="src" id="src-{turn}-{c.n}" data-n="{c.n}" data-turn="{turn}">'
        f"<summary>[{c.n}] {esc(c.title)}</summary>"
        f'<div class="meta">{" · ".join(meta)}</div>'
        f'<div class="passage">{highlight_span(c)}</div>'
        f'<button class="open-doc" type="button" data-turn="{turn}" data-n="{c.n}">'
        f"{where}</button></details>"
    )


def render_sources(
    result: AnswerResult | None, turn: int, files: Mapping[str, str] | None = None
) -> str:
    """One answer's sources: the cited passages only, each collapsible, span highlighted."""
    if result is None:
        return ""
    citations = cited(result)
    if not citations:
        return '<div class="rag-sources"><p class="rag-none">No sources.</p></div>'
    items = "".join(_source(c, turn, files or {}) for c in citations)
    return f'<div class="rag-sources"><h4>Sources</h4>{items}</div>'


def render_all_sources(turns: Sequence[ChatTurn], active: int | None = None) -> str:
    """Every answer's sources, one group per turn, so a badge of any answer finds its passage;
    only the active turn's group (the last, unless a badge or "show sources" chose another)
    is visible."""
    if not turns:
        return ""
    if active is None:
        active = len(turns) - 1
    groups = []
    for i, t in enumerate(turns):
        hidden = "" if i == active else " hidden"
        label = f'<div class="turn-label">Answer {i + 1}: {esc(t.question)}</div>'
        if t.result is not None:
            body = render_sources(t.result, i, t.files)
        elif t.done:
            body = '<p class="rag-none">No sources.</p>'
        else:
            body = '<p class="rag-none">The sources show when the answer is checked.</p>'

        groups.append(
            f'<section class="turn-sources" data-turn="{i}"{hidden}>{label}{body}</section>'
        )
    return "".join(groups)


def _searched(question_used: str) -> str:
    if not question_used:
        return ""
    return (
        '<details class="searched"><summary>searched for</summary>'
        f'<span class="question-used">{esc(question_used)}</span></details>'
    )


def _actions(turn: ChatTurn, index: int, busy: bool) -> str:
    if not turn.done:
        return ""
    buttons = ['<button type="button" class="act act-copy">Copy</button>']
    if not busy:
        buttons.append('<button type="button" class="act act-regen">Regenerate</button>')
    if turn.result is not None and cited(turn.result):
        buttons.append('<button type="button" class="act act-sources">Show sources</button>')
    return f'<div class="rag-actions" data-turn="{index}">{"".join(buttons)}</div>'


def render_turn(turn: ChatTurn, index: int, busy: bool = False) -> str:
    """One question and its answer: streaming, final, stopped, refused or failed."""
    result = turn.result
    status = ""
    if turn.error is not None:
        css, label = "error", '<span class="rag-label">Error</span>'
        body = esc(turn.error)
    elif turn.stopped:
        css, label = "stopped", f'<span class="rag-label">{STOPPED_LABEL}</span>'
        body = esc(turn.answer).replace("\n", "<br>")
    elif result is None:
        css, label, body = "pending", "", esc(turn.answer).replace("\n", "<br>")
        status = f'<div class="rag-working">{esc(turn.status or "Working…")}</div>'
    elif result.refused:
        css, label = "refused", f'<span class="rag-label">{REFUSAL_LABEL}</span>'
        body = esc(result.answer).replace("\n", "<br>")
    else:
        css, label = "answered", ""
        body = render_answer_text(
            result.answer, [c.n for c in cited(result)], index, result.sentences
        )
    return (
        f'<div class="rag-turn" data-turn="{index}"><div class="rag-q">{esc(turn.question)}</div>'
        f'<div class="rag-a {css}">{label}{status}<span class="answer-text">{body}</span>'
        f"{_searched(turn.question_used)}{_actions(turn, index, busy)}</div></div>"
    )


def render_transcript(
    turns: Sequence[ChatTurn], queued: Sequence[str] = (), busy: bool = False
) -> str:
    """The conversation, and the questions waiting behind its running answer."""
    if not turns and not queued:
        return EMPTY_CHAT
    html_turns = [render_turn(t, i, busy) for i, t in enumerate(turns)]
    html_turns += [
        f'<div class="rag-turn queued"><div class="rag-q">{esc(q)}</div>'
        '<div class="rag-a queued"><span class="rag-label">Queued</span>'
        "asked when the answer above is done</div></div>"
        for q in queued
    ]
    return "".join(html_turns)


def error_message(error: str, settings: Settings | None = None) -> str:
    """A clear message for a failed LLM call; the page stays usable."""
    return (
        f"The language model endpoint failed: {redact(error, settings)}. "
        "Check that it is running and reachable, then ask again."
    )
