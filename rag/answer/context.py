"""What the LLM is shown: the passages that fit the budget, numbered, and the prompt around them.

The prompt keeps its fixed part (system prompt and worked examples, `prompts/`) first, so a
model server's prompt cache reuses it and only the passages and the question are read anew.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from rag import prompts
from rag.answer.untrusted import without_instructions
from rag.config import Settings
from rag.events import Passage, RankedUnit
from rag.ingest import LoadedDocument
from rag.llm import Message
from rag.retrieval import Retrieval
from rag.text import count_tokens

RANKED_KEPT = 10  # the head of the ranking that results carry (for evals and debugging)


DocumentLookup = Callable[[str, str | None], LoadedDocument | None]  # (doc_id, content hash)
# Where a sentence ends (and the next may begin): after . ! ? (and closing quotes or brackets)
# followed by white space, or at a paragraph break.
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s+|\n\s*\n")
_SPACE = re.compile(r"\s*")
# A quotation's end: a word, its sentence's punctuation, then a closing quotation mark.
_QUOTATION_END = re.compile(r"\w[.!?,]+[\"'”’»]$")
ATTRIBUTION_WORDS = 12  # at most, in the sentence that says who said a quotation


def format_passage(passage: Passage) -> str:
    about = ", ".join(x for x in (passage.source, passage.published, passage.section) if x)
    header = f"[{passage.n}] " + (f"({about}) " if about else "")
    # What addresses the assistant is cut: the model never reads it as an instruction.
    return header + " ".join(without_instructions(passage.text).split())


def whole_sentences(
    text: str, start: int, end: int, reach: int, sentences_after: int = 0
) -> tuple[int, int]:
    """[start, end) widened to the sentences it cuts: back to where the sentence at `start`
    begins and on to where the one at `end` ends, each at most `reach` characters away (a
    side with no sentence bound in reach is left as it is); then on by `sentences_after`
    whole sentences more, as far as they end within `reach` of `end`."""
    if reach <= 0:
        return start, end
    lo = max(0, start - reach)
    bounds = [m.end() for m in _SENTENCE_END.finditer(text, lo, start)]
    new_start = bounds[-1] if bounds else (0 if lo == 0 else start)
    limit = min(len(text), end + reach)
    hit = _SENTENCE_END.search(text, max(start, end - 1), limit)
    new_end = hit.start() + len(hit.group(0).rstrip()) if hit else end
    if not hit and end + reach >= len(text):
        new_end = len(text)
    new_end = max(new_end, end)
    for _ in range(sentences_after if hit else 0):
        next_start = _SPACE.match(text, new_end).end()  # past the space between
        hit = _SENTENCE_END.search(text, next_start + 1, limit)
        if hit:
            new_end = hit.start() + len(hit.group(0).rstrip())
        elif limit == len(text) and next_start < len(text):
            new_end = len(text)  # the text's last sentence, with no end mark
        else:
            break
    if sentences_after:
        new_end = _with_attribution(text, new_end, limit)
    return new_start, new_end


def _with_attribution(text: str, end: int, limit: int) -> int:
    """`end`, or past the attribution of a quotation that ends there: a short sentence in the
    same paragraph right after the closing quote ('…something big???” Trump posted on his
    platform, Truth Social.'), which says who said it and where. The sentence splitter ends
    the quotation's last sentence at its closing mark, so the sentences shown after a passage
    would otherwise stop at the quote and leave out its source."""
    if not _QUOTATION_END.search(text, max(0, end - 16), end):
        return end
    rest = _SPACE.match(text, end).end()
    hit = _SENTENCE_END.search(text, rest + 1, limit)
    if hit is None or "\n\n" in text[end : hit.start()]:
        return end
    sentence_end = hit.start() + len(hit.group(0).rstrip())
    if len(text[rest:sentence_end].split()) > ATTRIBUTION_WORDS:
        return end
    return sentence_end


def _shown_range(
    candidate, document: LoadedDocument | None, reach: int, sentences_after: int
) -> tuple[int, int, str]:
    node = candidate.node.node
    start, end = node.start_char_idx or 0, node.end_char_idx or 0
    chunk = node.get_content(metadata_mode="none")
    if document is None or document.text[start:end] != chunk:
        return start, end, chunk  # no stored text to widen from (or it no longer matches)
    start, end = whole_sentences(document.text, start, end, reach, sentences_after)
    return start, end, document.text[start:end]


def select_passages(
    retrieval: Retrieval, settings: Settings, documents: DocumentLookup | None = None
) -> list[Passage]:
    """The best candidates that fit the token budget, numbered from 1; none if nothing relevant.

    A question in several sourced parts gets a passage budget per part (up to three); a long,
    entity-rich question a larger one, since its answer joins facts from several passages.
    The budget counts the ranked chunks; what is shown is each chunk completed to whole
    sentences (with the stored document, `documents`), and two shown passages of one document
    that overlap become one."""
    parts = min(retrieval.parts, 3)
    reach = settings.passage_context_chars
    # a short question asks one thing, often stated just after what matched it; a long one
    # joins facts from several passages, whose budget the sentences after would take
    sentences_after = 0 if retrieval.long else settings.passage_sentences_after
    per_part = settings.long_question_context_tokens if retrieval.long else settings.context_tokens
    budget, top_k = per_part * parts, settings.top_k + parts - 1
    relevant = [
        c
        for c in retrieval.candidates
        if (c.dense_similarity or 0.0) >= settings.min_dense_score or (c.keyword_score or 0.0) > 0
    ]
    if not relevant or max(c.dense_similarity or 0.0 for c in relevant) < settings.min_dense_score:
        return []
    passages: list[Passage] = []
    used = 0
    cache: dict[str, LoadedDocument | None] = {}
    for candidate in relevant:
        node = candidate.node.node
        meta = node.metadata
        doc_id = str(meta.get("doc_id", ""))
        chunk = Passage(0, node.node_id, doc_id, "", node.get_content(metadata_mode="none"), 0, 0)
        cost = count_tokens(format_passage(chunk))
        if passages and used + cost > budget:
            break
        used += cost
        if documents is not None and doc_id not in cache:
            cache[doc_id] = documents(doc_id, meta.get("content_hash"))
        document = cache.get(doc_id)
        start, end, text = _shown_range(candidate, document, reach, sentences_after)
        overlapping = next(
            (
                i
                for i, p in enumerate(passages)
                if p.doc_id == doc_id and start <= p.end and p.start <= end and document
            ),
            None,
        )
        if overlapping is not None:
            kept = passages[overlapping]
            start, end = min(start, kept.start), max(end, kept.end)
            assert document is not None
            text = document.text[start:end]
        page = document.page_at(start) if document is not None else meta.get("page")
        passage = Passage(
            n=len(passages) + 1 if overlapping is None else passages[overlapping].n,
            chunk_id=node.node_id if overlapping is None else passages[overlapping].chunk_id,
            doc_id=doc_id,
            title=str(meta.get("title", "")),
            text=text,
            start=start,
            end=end,
            published=meta.get("published"),
            source=meta.get("source"),
            score=candidate.score if overlapping is None else passages[overlapping].score,
            page=page,
            section=(document.section_at(start) if document else None) or meta.get("section"),
            page_starts=tuple(s for s in (document.pages if document else ()) if start < s < end),
        )
        if overlapping is None:
            passages.append(passage)
        else:
            passages[overlapping] = passage
        if len(passages) >= top_k:
            break
    return passages


def ranked_units(retrieval: Retrieval) -> list[RankedUnit]:
    return [RankedUnit(c.doc_id, c.key, c.unit_text) for c in retrieval.candidates[:RANKED_KEPT]]


def prompt_prefix() -> list[Message]:
    """System prompt and worked examples: fixed and first, so the server caches them."""
    refusal = prompts.refusal_text()
    system = {"role": "system", "content": prompts.render("system", refusal=refusal)}
    return [system, *prompts.conversation("answer_examples", refusal=refusal)]


def answer_messages(
    prefix: list[Message], passages: Sequence[Passage], question: str
) -> list[Message]:
    user = prompts.render(
        "answer", passages="\n".join(format_passage(p) for p in passages), question=question
    )
    return [*prefix, {"role": "user", "content": user}]


def warm_up_messages(prefix: list[Message]) -> list[Message]:
    """The answer prompt with a placeholder passage: what priming the prefix sends."""
    sample = [Passage(1, "", "", "", "Warm-up passage.", 0, 0)]
    return answer_messages(prefix, sample, "Warm-up?")
