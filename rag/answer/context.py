"""What the LLM is shown: the passages that fit the budget, numbered, and the prompt around them.

The prompt keeps its fixed part (system prompt and worked examples, `prompts/`) first, so a
model server's prompt cache reuses it and only the passages and the question are read anew.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag import prompts
from rag.config import Settings
from rag.events import Passage, RankedUnit
from rag.llm import Message
from rag.retrieval import Retrieval
from rag.text import count_tokens

RANKED_KEPT = 10  # the head of the ranking that results carry (for evals and debugging)


def format_passage(passage: Passage) -> str:
    about = ", ".join(x for x in (passage.source, passage.published) if x)
    header = f"[{passage.n}] " + (f"({about}) " if about else "")
    return header + " ".join(passage.text.split())


def select_passages(retrieval: Retrieval, settings: Settings) -> list[Passage]:
    """The best candidates that fit the token budget, numbered from 1; none if nothing relevant.

    A question in several sourced parts gets a passage budget per part (up to three); a long,
    entity-rich question a larger one, since its answer joins facts from several passages."""
    parts = min(retrieval.parts, 3)
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
    for candidate in relevant:
        node = candidate.node.node
        meta = node.metadata
        passage = Passage(
            n=len(passages) + 1,
            chunk_id=node.node_id,
            doc_id=str(meta.get("doc_id", "")),
            title=str(meta.get("title", "")),
            text=node.get_content(metadata_mode="none"),
            start=node.start_char_idx or 0,
            end=node.end_char_idx or 0,
            published=meta.get("published"),
            source=meta.get("source"),
            score=candidate.score,
        )
        cost = count_tokens(format_passage(passage))
        if passages and used + cost > budget:
            break
        passages.append(passage)
        used += cost
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
