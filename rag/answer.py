"""The chain behind every surface: condense → retrieve → prompt → stream → check citations.

`Engine.answer()` yields events (rag/events.py); the page, the CLI and the evals only consume
them. Extra LLM calls are made only when needed: condensing runs only for a follow-up that
refers back to the conversation, and the citation check is lexical, not another model call.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from functools import cached_property

import tiktoken

from rag import prompts
from rag.citations import StreamingCitationFilter, build_citations, check_answer
from rag.config import Settings
from rag.events import AnswerResult, Event, Final, Passage, Searching, Sources, Token, Turn
from rag.llm import LLM, LLMError, Message, connect_llm
from rag.metrics import is_refusal_text
from rag.retrieve import Retrieval, Retriever
from rag.store import KnowledgeBase

log = logging.getLogger(__name__)

HISTORY_TURNS = 3
_REFERRING = re.compile(
    r"\b(he|she|it|its|they|them|him|his|her|hers|their|theirs|that|this|those|these|there|"
    r"then|same|also|too|other|another|former|latter|else)\b",
    re.IGNORECASE,
)
_encoding = tiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    return len(_encoding.encode(text, disallowed_special=()))


def needs_condensing(question: str, history: Sequence[Turn]) -> bool:
    """A follow-up needs rewriting only when it leans on the conversation."""
    return bool(history) and (bool(_REFERRING.search(question)) or len(question.split()) <= 3)


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


def condense_warm_up_messages() -> list[Message]:
    return prompts.conversation("condense", history="User: Hi\nAssistant: Hi", question="Hi?")


def prime(llm: LLM, messages: list[Message]) -> None:
    """Put a fixed prefix in the model's prompt cache: restored from disk when the model
    server can (LocalLLM.prime), else by asking for one token."""
    restore_or_compute = getattr(llm, "prime", None)
    if restore_or_compute is not None:
        restore_or_compute(messages)
        return
    for _ in llm.stream(messages, max_tokens=1):
        pass


def cache_prompt_prefixes(
    llm: LLM, follow_ups: bool = True, prefix: list[Message] | None = None
) -> None:
    """The answer prompt's fixed prefix (and the condense prompt's) into the model's cache;
    needs no knowledge base (`rag setup` runs it)."""
    sample = [Passage(1, "", "", "", "Warm-up passage.", 0, 0)]
    prime(llm, answer_messages(prefix or prompt_prefix(), sample, "Warm-up?"))
    if follow_ups:
        prime(llm, condense_warm_up_messages())


class Engine:
    """Loads models and indexes once per process; answers many questions."""

    def __init__(self, settings: Settings, kb: KnowledgeBase, llm: LLM | None = None) -> None:
        self.settings = settings
        self.kb = kb
        self._llm = llm
        self.retriever = Retriever(settings, kb)

    @classmethod
    def from_settings(cls, settings: Settings, llm: LLM | None = None) -> Engine:
        from rag.embed import make_embedder

        return cls(settings, KnowledgeBase(settings, make_embedder(settings)), llm)

    @property
    def llm(self) -> LLM:
        if self._llm is None:
            self._llm = connect_llm(self.settings)
        return self._llm

    @cached_property
    def _prompt_prefix(self) -> list[Message]:
        return prompt_prefix()

    def build_messages(self, passages: Sequence[Passage], question: str) -> list[Message]:
        return answer_messages(self._prompt_prefix, passages, question)

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        lines = []
        for turn in history[-HISTORY_TURNS:]:
            lines += [f"User: {turn.question}", f"Assistant: {turn.answer}"]
        messages = prompts.conversation("condense", history="\n".join(lines), question=question)
        text = "".join(self.llm.stream(messages, max_tokens=64))
        rewritten = text.strip().split("\n")[0].strip().strip('"')
        rewritten = re.sub(r"^(rewritten question|question)\s*:\s*", "", rewritten, flags=re.I)
        return rewritten or question

    def warm_up(self, follow_ups: bool = True) -> None:
        """Load the model and put the fixed prompt prefixes in the server's cache, so the first
        question pays no start-up cost. With `follow_ups=False` the condense prompt is left to
        `warm_up_rest()` (a first question never needs it; `rag serve` runs it once the
        page is up). Errors surface later, on a real question."""
        try:
            cache_prompt_prefixes(self.llm, follow_ups=False, prefix=self._prompt_prefix)
            if follow_ups:
                self.warm_up_rest()
            self.retriever.retrieve("warm-up")  # loads the keyword index, runs the embedder
        except LLMError as exc:
            log.warning("warm-up failed: %s", exc)

    def warm_up_rest(self) -> None:
        """What a first question does not need: the condense prompt (follow-ups) and the learned
        ranking's model (long questions; building its trees takes a moment)."""
        try:
            prime(self.llm, condense_warm_up_messages())
            self.retriever.ranker()
        except (LLMError, ValueError) as exc:
            log.warning("warm-up failed: %s", exc)

    def answer(self, question: str, history: Sequence[Turn] = ()) -> Iterator[Event]:
        started = time.perf_counter()
        question = " ".join(question.split())
        refusal = prompts.refusal_text()
        timings: dict[str, float] = {}

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000

        def final(answer: str, refused: bool, **fields) -> Final:
            timings["total_ms"] = elapsed()
            fields.setdefault("question_used", question)
            return Final(
                AnswerResult(answer, refused, question=question, timings=timings, **fields)
            )

        if not question:
            yield final("", False, citations=[], error="Please type a question.")
            return
        question_used = question
        try:
            if needs_condensing(question, history):
                question_used = self.condense(question, history)
                timings["condense_ms"] = elapsed()
        except LLMError as exc:
            yield final("", False, citations=[], error=str(exc))
            return
        yield Searching(question_used)

        retrieval_started = time.perf_counter()
        passages = select_passages(self.retriever.retrieve(question_used), self.settings)
        timings["retrieval_ms"] = (time.perf_counter() - retrieval_started) * 1000
        yield Sources(passages)
        if not passages:  # nothing relevant: refuse without asking the model to guess
            yield final(refusal, True, citations=[], question_used=question_used)
            return

        messages = self.build_messages(passages, question_used)
        stream_filter = StreamingCitationFilter(p.n for p in passages)
        pieces: list[str] = []
        try:
            for piece in self.llm.stream(messages, max_tokens=self.settings.llm_max_tokens):
                if not pieces:
                    timings["first_token_ms"] = elapsed()
                pieces.append(piece)
                if shown := stream_filter.feed(piece):
                    yield Token(shown)
            if rest := stream_filter.flush():
                yield Token(rest)
        except LLMError as exc:
            yield final(
                "",
                False,
                citations=[],
                passages=passages,
                error=str(exc),
                question_used=question_used,
            )
            return

        raw = "".join(pieces).strip()
        tokens = {
            "prompt": sum(count_tokens(m["content"]) for m in messages),
            "passages": sum(count_tokens(format_passage(p)) for p in passages),
            "completion": count_tokens(raw),
        }
        if is_refusal_text(raw):
            yield final(
                refusal,
                True,
                citations=[],
                passages=passages,
                tokens=tokens,
                question_used=question_used,
            )
            return
        checked = check_answer(raw, passages, question_used, refusal)
        yield final(
            checked.text,
            checked.refused,
            citations=build_citations(checked, passages),
            passages=passages,
            tokens=tokens,
            question_used=question_used,
        )

    def ask(self, question: str, history: Sequence[Turn] = ()) -> AnswerResult:
        """The final result of `answer()`, for callers that do not stream."""
        for event in self.answer(question, history):
            if isinstance(event, Final):
                return event.result
        raise AssertionError("answer() ended without a Final event")

    def status(self) -> dict[str, object]:
        stats = self.kb.stats()
        if self.settings.llm_base_url:
            llm = f"{self.settings.llm_model} at {self.settings.llm_base_url}"
        elif self._llm is not None:
            llm = self._llm.description
        else:
            llm = "shipped Qwen2.5-Coder-1.5B (local, not started yet)"
        return {"llm": llm, "embed_model": self.kb.embedder.model_name, **stats}
