"""The baseline: llama-index's own CitationQueryEngine over the same Chroma collection,
embedder and LLM endpoint (retrieval only: its dense retriever alone)."""

from __future__ import annotations

import re
import time
from typing import Any

from rag.answer import Engine
from rag.events import Passage
from rag.text import count_tokens, is_refusal_text
from rag_eval.data import Question
from rag_eval.metrics import TOP, answer_measures, retrieval_measures
from rag_eval.runners import base_row, passage_dicts, ranked_summary

BASELINE_TOP_K = 3  # passages CitationQueryEngine answers from (rag's top_k default, too)
# CitationQueryEngine's prompt asks the model to "indicate" that no source helps; it words that
# in ways rag's refusal detector was not written for.
_BASELINE_REFUSAL = re.compile(
    r"\bnone of the (?:provided |given )?(?:sources|passages|documents)\b|"
    r"\b(?:sources|passages|documents) (?:are|were) not helpful\b",
    re.IGNORECASE,
)


class Baseline:
    """llama-index's own CitationQueryEngine over the same Chroma collection, embedder and LLM
    endpoint. Retrieval-only: its dense retriever alone (VectorStoreIndex's default)."""

    name = "llama-index CitationQueryEngine"

    def __init__(self, engine: Engine, llm: Any = None) -> None:
        from llama_index.core import VectorStoreIndex

        self.index = VectorStoreIndex.from_vector_store(
            engine.kb.vector_store, embed_model=engine.kb.embedder
        )
        self.retriever = self.index.as_retriever(similarity_top_k=TOP)
        self.query_engine = None
        if llm is not None:
            from llama_index.core.query_engine import CitationQueryEngine

            self.query_engine = CitationQueryEngine.from_args(
                self.index, llm=llm, similarity_top_k=BASELINE_TOP_K, streaming=True
            )

    def row(self, q: Question) -> dict[str, Any]:
        from llama_index.core.schema import QueryBundle

        row = base_row(q)
        bundle = QueryBundle(query_str=q.text)  # no chat history: it is a query engine
        started = time.perf_counter()
        nodes = self.retriever.retrieve(bundle)
        timings = {"retrieval_ms": (time.perf_counter() - started) * 1000}
        ranked = [
            (
                str(n.node.metadata.get("doc_id", "")),
                n.node.node_id,
                n.node.get_content(metadata_mode="none"),
            )
            for n in nodes
        ]
        row["question_used"] = q.text
        row["retrieval"] = retrieval_measures(q, [(d, t) for d, _, t in ranked])
        row["top"] = ranked_summary(ranked)
        if self.query_engine is not None:
            row.update(self._answer(q, bundle, nodes[:BASELINE_TOP_K], started, timings))
        row["timings"] = timings
        return row

    def _answer(
        self, q: Question, bundle: Any, nodes: list[Any], started: float, timings: dict
    ) -> dict[str, Any]:
        from llama_index.core.query_engine.citation_query_engine import CITATION_QA_TEMPLATE

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000

        pieces: list[str] = []
        error = None
        source_nodes: list[Any] = []
        try:
            response = self.query_engine.synthesize(bundle, nodes)
            source_nodes = list(response.source_nodes)
            for piece in response.response_gen:
                if piece and "first_token_ms" not in timings:
                    timings["first_token_ms"] = elapsed()
                pieces.append(piece)
        except Exception as exc:  # the baseline must not end the run
            error = f"{type(exc).__name__}: {exc}"
        timings["total_ms"] = elapsed()
        answer = "".join(pieces).strip()
        passages = []
        for i, n in enumerate(source_nodes, 1):
            text = re.sub(r"\ASource \d+:\n", "", n.node.get_content(metadata_mode="none"))
            meta = n.node.metadata
            passages.append(
                Passage(
                    n=i,
                    chunk_id=n.node.node_id,
                    doc_id=str(meta.get("doc_id", "")),
                    title=str(meta.get("title", "")),
                    text=text.strip(),
                    start=0,
                    end=0,
                    published=meta.get("published"),
                    source=meta.get("source"),
                )
            )
        refused = not error and bool(is_refusal_text(answer) or _BASELINE_REFUSAL.search(answer))
        context = "\n\n".join(n.node.get_content(metadata_mode="llm") for n in source_nodes)
        prompt = CITATION_QA_TEMPLATE.format(context_str=context, query_str=q.text)
        return {
            "answer": answer,
            "refused": refused,
            "refused_by": "model" if refused else None,
            "error": error,
            "passages": passage_dicts(passages),
            "_passages": passages,
            "tokens": {"prompt": count_tokens(prompt), "completion": count_tokens(answer)},
            **answer_measures(q, answer, refused, [p.n for p in passages], error),
        }
