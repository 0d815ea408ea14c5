"""What retrieval hands on: ranked candidates, best first.

Score convention, end to end: a dense hit's score is the cosine similarity of its chunk with the
query; a keyword hit's is its BM25 score; a candidate's `score` is its rank score in the list
it is in (reciprocal-rank fusion, or the learned ranking's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llama_index.core.schema import NodeWithScore, TextNode

from rag.retrieval.plan import SubQuery


@dataclass(frozen=True)
class Candidate:
    node: NodeWithScore  # the chunk the LLM reads
    score: float  # rank score in its list: higher is better
    # Cosine similarity with the question of the chunk that speaks for this candidate (its
    # best dense hit, or the chunk shown from it); None when no dense score is known.
    dense_similarity: float | None
    keyword_score: float | None  # BM25 of the ranked unit
    section: TextNode | None = None  # the ranked unit the chunk was chosen from

    @property
    def chunk_id(self) -> str:
        return self.node.node.node_id

    @property
    def key(self) -> str:
        """What ranking deduplicates on: the section, or the chunk when there is none."""
        return self.section.node_id if self.section is not None else self.chunk_id

    @property
    def unit_text(self) -> str:
        """The ranked unit's text (what retrieval metrics look evidence up in)."""
        unit = self.section if self.section is not None else self.node.node
        return unit.get_content(metadata_mode="none")

    @property
    def doc_id(self) -> str:
        return str(self.node.node.metadata.get("doc_id", ""))


@dataclass
class Retrieval:
    candidates: list[Candidate]
    plan: list[SubQuery] = field(default_factory=list)
    long: bool = False  # a long, entity-rich question: ranked by sections, given more context
    empty_corpus: bool = False  # nothing is indexed at all

    @property
    def parts(self) -> int:
        """How many separately sourced parts the question has (1 for a plain question)."""
        return max(1, len({q.sources for q in self.plan if q.sources}))
