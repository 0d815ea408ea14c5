"""The chain behind every surface: condense → retrieve → prompt → stream → check citations.

`Engine.answer()` yields events (rag/events.py); the page, the CLI, the API and the evals only
consume them. Extra LLM calls are made only when needed: condensing runs only for a follow-up
that refers back to the conversation, and the citation check is lexical, not another model call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property

from rag import prompts
from rag.answer.citations import (
    SentenceGate,
    StreamingCitationFilter,
    StreamNumbering,
    build_citations,
    check_answer,
    renumber,
)
from rag.answer.condense import condense, needs_condensing
from rag.answer.condense import warm_up_messages as condense_warm_up_messages
from rag.answer.context import (
    answer_messages,
    format_passage,
    prompt_prefix,
    ranked_units,
    select_passages,
    warm_up_messages,
)
from rag.answer.verifier import LexicalVerifier, SupportReview, TokenEncoder, Verifier
from rag.config import Settings
from rag.events import AnswerResult, Event, Final, Searching, Sources, Token, Turn
from rag.knowledge_base import KnowledgeBase
from rag.llm import LLM, LLMError, Message
from rag.retrieval import Retriever
from rag.security import redact
from rag.text import count_tokens, is_refusal_text

log = logging.getLogger(__name__)


def cache_prompt_prefixes(llm: LLM, follow_ups: bool = True) -> None:
    """The answer prompt's fixed prefix (and the condense prompt's) into the model's cache;
    needs no knowledge base (`rag setup` runs it)."""
    llm.prime(warm_up_messages(prompt_prefix()))
    if follow_ups:
        llm.prime(condense_warm_up_messages())


class Engine:
    """Loads models and indexes once per process; answers many questions.

    The LLM is connected on first use (`connect_llm`), so commands that never ask the model
    (listing documents, refusing a question nothing relevant answers) never start one."""

    def __init__(
        self,
        settings: Settings,
        kb: KnowledgeBase,
        llm: LLM | None = None,
        connect_llm: Callable[[], LLM] | None = None,
        retriever: Retriever | None = None,
        verifier: Verifier | Callable[[], Verifier] | None = None,
    ) -> None:
        self.settings = settings
        self.kb = kb
        self._llm = llm
        self._connect_llm = connect_llm
        self.retriever = retriever or Retriever(settings, kb)
        # a verifier, or what builds one on first use (commands that never answer never read it)
        self._verifier = verifier
        self.llm_problem: str | None = None  # why the model endpoint is not usable, if known

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            encoder = self.kb.embedder
            self._verifier = LexicalVerifier(encoder if isinstance(encoder, TokenEncoder) else None)
        elif not isinstance(self._verifier, Verifier):
            self._verifier = self._verifier()
        return self._verifier

    @verifier.setter
    def verifier(self, verifier: Verifier) -> None:
        self._verifier = verifier

    @property
    def llm(self) -> LLM:
        if self._llm is None:
            if self._connect_llm is None:
                raise LLMError("No language model is configured.")
            self._llm = self._connect_llm()
        return self._llm

    @cached_property
    def _prompt_prefix(self) -> list[Message]:
        return prompt_prefix()

    def warm_up(self, follow_ups: bool = True) -> None:
        """Load the search side and the model, and put the fixed prompt prefixes in the
        server's cache, so the first question pays no start-up cost. With `follow_ups=False`
        the condense prompt is left to `warm_up_rest()` (a first question never needs it;
        `rag serve` runs it once the page is up). Errors surface later, on a real question.

        The search side loads first: while it does, a model still loading elsewhere (the
        child process of `rag ask`) keeps loading instead of being waited for."""
        try:
            self.retriever.retrieve("warm-up")  # loads the keyword index, runs the embedder
            self.llm.prime(warm_up_messages(self._prompt_prefix))
            self.llm_problem = None
            if follow_ups:
                self.warm_up_rest()
        except LLMError as exc:
            self.llm_problem = redact(str(exc), self.settings)
            log.warning("warm-up failed: %s", self.llm_problem)

    def llm_reachable(self, timeout: float = 2.0) -> bool:
        """Whether the model endpoint answers at all (its model list), within `timeout`;
        `llm_problem` says why not."""
        from rag.llm.local import answers

        base_url = getattr(self.llm, "base_url", None)
        if base_url is None or answers(base_url, timeout=timeout):
            return True
        self.llm_problem = redact(
            f"model endpoint not answering: {base_url} (answers will fail until it does)",
            self.settings,
        )
        return False

    def warm_up_rest(self) -> None:
        """What a first question does not need: the condense prompt (follow-ups) and the
        reranker's model (long questions)."""
        try:
            self.llm.prime(condense_warm_up_messages())
            self.retriever.reranker()
        except (LLMError, ValueError) as exc:
            log.warning("warm-up failed: %s", redact(str(exc), self.settings))

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
            fields.setdefault("citations", [])
            return Final(
                AnswerResult(answer, refused, question=question, timings=timings, **fields)
            )

        if not question:
            yield final("", False, error="Please type a question.", error_code="empty_question")
            return
        if len(question) > self.settings.max_question_chars:
            limit = self.settings.max_question_chars
            yield final(
                "",
                False,
                error=f"The question is {len(question):,} characters long; the limit is "
                f"{limit:,}. Ask about one thing at a time.",
                error_code="question_too_long",
            )
            return
        question_used = question
        try:
            if needs_condensing(question, history):
                question_used = condense(self.llm, question, history)
                timings["condense_ms"] = elapsed()
        except LLMError as exc:
            yield final("", False, error=redact(str(exc), self.settings), error_code="llm")
            return
        yield Searching(question_used)

        retrieval_started = time.perf_counter()
        retrieval = self.retriever.retrieve(question_used)
        passages = select_passages(retrieval, self.settings, self.kb.document)
        timings["retrieval_ms"] = (time.perf_counter() - retrieval_started) * 1000
        # what every result from here on carries
        shown = {
            "passages": passages,
            "ranked": ranked_units(retrieval),
            "question_used": question_used,
        }
        yield Sources(passages)
        if retrieval.empty_corpus:
            yield final(
                prompts.load("no_documents").strip(),
                True,
                reason="no_documents",
                refused_by="retrieval",
                **shown,
            )
            return
        if not passages:  # nothing relevant: refuse without asking the model to guess
            yield final(refusal, True, reason="not_in_documents", refused_by="retrieval", **shown)
            return

        messages = answer_messages(self._prompt_prefix, passages, question_used)
        stream_filter = StreamingCitationFilter(p.n for p in passages)
        review = SupportReview(self.verifier, question_used, passages, decides=not retrieval.long)
        gate = SentenceGate(passages, question_used, admit=review.admit)
        numbering = StreamNumbering()  # applied to released (whole) sentences only
        pieces: list[str] = []
        try:
            for piece in self.llm.stream(messages, max_tokens=self.settings.llm_max_tokens):
                if not pieces:
                    timings["first_token_ms"] = elapsed()
                pieces.append(piece)
                if text := gate.feed(stream_filter.feed(piece)):
                    timings.setdefault("first_shown_ms", elapsed())
                    yield Token(numbering.feed(text))
            if rest := gate.feed(stream_filter.flush()) + gate.flush():
                timings.setdefault("first_shown_ms", elapsed())
                yield Token(numbering.feed(rest))
        except LLMError as exc:
            yield final("", False, error=redact(str(exc), self.settings), error_code="llm", **shown)
            return

        raw = "".join(pieces).strip()
        shown["raw_answer"] = raw
        shown["tokens"] = {
            "prompt": sum(count_tokens(m["content"]) for m in messages),
            "passages": sum(count_tokens(format_passage(p)) for p in passages),
            "completion": count_tokens(raw),
        }
        if is_refusal_text(raw):
            yield final(refusal, True, reason="not_in_documents", refused_by="model", **shown)
            return
        checked = review.review(check_answer(raw, passages, question_used, refusal), refusal)
        timings["verify_ms"] = review.elapsed_ms
        if review.first is not None:
            shown["answerability"] = review.first.probability
            shown["signals"] = review.first.signals
        if checked.refused:
            yield final(
                checked.text,
                True,
                reason="not_in_documents",
                refused_by="verifier" if review.refused else "check",
                sentences=checked.verdicts,
                **shown,
            )
            return
        checked, shown["passages"] = renumber(checked, passages)
        yield final(
            checked.text,
            False,
            citations=build_citations(checked, shown["passages"]),
            sentences=checked.verdicts,
            **shown,
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
            endpoint = f"{self.settings.llm_model} at {self.settings.llm_base_url}"
            llm = redact(endpoint, self.settings)
        elif self._llm is not None:
            llm = self._llm.description
        else:
            llm = "shipped Qwen2.5-Coder-1.5B (local, not started yet)"
        if self.llm_problem:
            llm += f" ({self.llm_problem})"
        return {"llm": llm, "embed_model": self.kb.embedder.model_name, **stats}
