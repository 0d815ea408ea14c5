"""Keyword search: BM25 indexes of chunks and of sections, persisted under the data dir.

Two grains: chunks (what is embedded and what the LLM reads) and sections (a few consecutive
chunks of one document, with its title, source and date), which long, entity-rich questions are
ranked by: they find their evidence far more often in a section than in one small chunk. The
indexes are keyed by the knowledge base's fingerprint and by KEYWORD_SCHEMA, and rebuilt only
when the corpus or what the indexes read changes.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from llama_index.core.schema import NodeWithScore, TextNode

from rag.retrieval.plan import SubQuery

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)

MAX_CACHED_MASKS = 256  # filter masks kept between questions (one float per chunk each)
MAX_CACHED_NODES = 8192  # parsed nodes kept per keyword index
# Bumped whenever the text an index reads of its entries changes: it names the folder the
# indexes are persisted in, so an index built with another is rebuilt, not silently reused.
KEYWORD_SCHEMA = 2


def index_folder(data_dir: Path, collection: str, fingerprint: str) -> Path:
    """Where the keyword indexes of this corpus version are persisted."""
    return data_dir / "bm25" / f"{collection}-{fingerprint}.k{KEYWORD_SCHEMA}"


def older_versions(folder: Path) -> list[Path]:
    """The other persisted versions of the same collection's indexes: named as `index_folder`
    names them, so a collection whose name extends this one's ("docs-old" beside "docs") keeps
    its own."""
    collection = folder.name.rsplit("-", 1)[0]
    version = re.compile(re.escape(collection) + r"-[0-9a-f]{16}(?:\.k\d+)?")
    return [
        old
        for old in folder.parent.glob(f"{collection}-*")
        if old != folder and version.fullmatch(old.name)
    ]


def chunk_keyword_text(node: TextNode) -> str:
    """What BM25 reads of a chunk: its text, after its section path when its document has
    sections. A short question about a manual often names what only the heading says (the
    setting, the option, the command), not the chunk's own sentences. A chunk without a section
    (news articles, plain text) is read exactly as the embedder reads it."""
    body = node.get_content(metadata_mode="embed")
    section = node.metadata.get("section")
    return f"{section}\n\n{body}" if section else body


def build_sections(
    chunks: list[TextNode], document_texts: dict[str, str], size: int
) -> list[TextNode]:
    """Sections of `size` consecutive chunks of each document: the document's text from the
    first chunk's start to the last one's end, with the chunks' metadata (so BM25 sees title,
    source and date as it would for a chunk) and the ids of the chunks it holds."""
    by_doc: dict[str, list[TextNode]] = defaultdict(list)
    for node in chunks:
        by_doc[str(node.metadata.get("doc_id", ""))].append(node)
    sections: list[TextNode] = []
    for doc_id, nodes in by_doc.items():
        nodes.sort(key=lambda n: int(n.metadata.get("chunk_index", 0)))
        text = document_texts.get(doc_id)
        for start in range(0, len(nodes), size):
            group = nodes[start : start + size]
            first, last = group[0], group[-1]
            if text is not None and first.end_char_idx is not None and last.end_char_idx:
                body = text[first.start_char_idx or 0 : last.end_char_idx]
            else:  # no offsets (records written by other tools): the chunks joined
                body = "\n".join(n.get_content(metadata_mode="none") for n in group)
            metadata = {**first.metadata, "chunk_ids": " ".join(n.node_id for n in group)}
            metadata.pop("chunk_index", None)
            hidden = [*first.excluded_llm_metadata_keys, "chunk_ids"]
            section = TextNode(
                id_=f"{first.node_id}+{len(group)}",
                text=body,
                metadata=metadata,
                excluded_embed_metadata_keys=hidden,
                excluded_llm_metadata_keys=hidden,
            )
            section.relationships = dict(first.relationships)
            sections.append(section)
    return sections


def top_rows(scores: np.ndarray, k: int) -> list[int]:
    """Rows of the k best positive scores, best first."""
    k = min(k, len(scores))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [row for row in top.tolist() if scores[row] > 0]


class KeywordIndex:
    """One BM25 index (llama-index's BM25Retriever, bm25s inside) scored with numpy directly:
    bm25s's batch `retrieve` starts a thread pool for each query. Keeps each entry's source and
    publication day as columns, so a filter is one numpy mask."""

    def __init__(self, bm25_retriever) -> None:
        self.retriever = bm25_retriever
        corpus = bm25_retriever.corpus
        self.ids = [str(entry["node_id"]) for entry in corpus]
        self.rows = {node_id: row for row, node_id in enumerate(self.ids)}
        self.sources = np.array([entry.get("source") or "" for entry in corpus], dtype=object)
        self.days = np.array([int(entry.get("published_day") or 0) for entry in corpus])
        self._masks: dict[tuple, np.ndarray] = {}
        self._nodes: dict[int, TextNode] = {}

    def node(self, row: int) -> TextNode:
        """The entry as a node. A long question asks for many, often the same section twice
        (found by several sub-queries) or again for the next question, and parsing one is not
        free, so they are kept (retrieval never changes a node)."""
        from llama_index.core.vector_stores.utils import metadata_dict_to_node

        node = self._nodes.get(row)
        if node is None:
            if len(self._nodes) >= MAX_CACHED_NODES:
                self._nodes.clear()
            node = self._nodes[row] = metadata_dict_to_node(self.retriever.corpus[row])
        return node

    def mask(self, sub: SubQuery) -> np.ndarray | None:
        """Weights: 1 for entries the sub-query's source and date filters admit, else 0."""
        if not (sub.sources or sub.days):
            return None
        key = (sub.sources, sub.days)
        mask = self._masks.get(key)
        if mask is None:
            admitted = np.ones(len(self.days), dtype=bool)
            if sub.sources:
                admitted &= np.isin(self.sources, list(sub.sources))
            if sub.days:
                admitted &= (self.days >= sub.days[0]) & (self.days <= sub.days[1])
            if len(self._masks) >= MAX_CACHED_MASKS:
                self._masks.clear()
            mask = self._masks[key] = admitted.astype(np.float32)
        return mask

    def scores(self, sub: SubQuery) -> np.ndarray | None:
        """BM25 score of every entry for the sub-query (0 where its filters exclude it)."""
        import bm25s

        bm25 = self.retriever
        tokens = bm25s.tokenize(
            sub.text,
            stemmer=bm25.stemmer,
            token_pattern=bm25.token_pattern,
            return_ids=False,
            show_progress=False,
        )[0]
        if not tokens:
            return None
        return bm25.bm25.get_scores(tokens, weight_mask=self.mask(sub))

    def search(
        self, sub: SubQuery, k: int, scores: np.ndarray | None = None
    ) -> list[NodeWithScore]:
        """The k best entries (score > 0), best first; `scores` when already computed."""
        if scores is None:
            scores = self.scores(sub)
        if scores is None:
            return []
        return [
            NodeWithScore(node=self.node(i), score=float(scores[i])) for i in top_rows(scores, k)
        ]


@dataclass
class KeywordIndexes:
    """The chunk and section indexes of one corpus version, and how sections map to chunks and
    to their articles."""

    chunks: KeywordIndex
    sections: KeywordIndex
    section_of: dict[str, str] = field(default_factory=dict)  # chunk id -> section id
    article_sections: dict[str, list[int]] = field(default_factory=dict)  # doc id -> rows
    section_position: list[int] = field(default_factory=list)  # row -> index in its article
    section_chunks: list[list[str]] = field(default_factory=list)  # row -> its chunk ids

    @classmethod
    def from_retrievers(cls, chunk_retriever, section_retriever) -> KeywordIndexes:
        indexes = cls(KeywordIndex(chunk_retriever), KeywordIndex(section_retriever))
        articles: dict[str, list[int]] = defaultdict(list)
        for row, entry in enumerate(indexes.sections.retriever.corpus):
            section_id = str(entry["node_id"])
            article = articles[str(entry.get("doc_id", ""))]
            indexes.section_position.append(len(article))
            article.append(row)
            indexes.section_chunks.append(str(entry.get("chunk_ids", "")).split())
            for chunk_id in indexes.section_chunks[row]:
                indexes.section_of[chunk_id] = section_id
        indexes.article_sections = dict(articles)
        return indexes

    def doc_id(self, section_row: int) -> str:
        return str(self.sections.retriever.corpus[section_row].get("doc_id", ""))


def bm25_retriever(nodes: list[TextNode], texts: list[str] | None = None):
    """A BM25 index of the nodes, reading `texts` (default: what the embedder reads of each)
    while keeping the nodes themselves as its entries."""
    from llama_index.core.vector_stores.utils import node_to_metadata_dict
    from llama_index.retrievers.bm25 import BM25Retriever

    if texts is None:
        return BM25Retriever.from_defaults(nodes=nodes, language="english")
    readable = [TextNode(id_=n.node_id, text=t) for n, t in zip(nodes, texts, strict=True)]
    retriever = BM25Retriever.from_defaults(nodes=readable, language="english")
    retriever.corpus = [node_to_metadata_dict(n) | {"node_id": n.node_id} for n in nodes]
    return retriever


def load_or_build(kb, folder: Path, section_chunks: int) -> KeywordIndexes | None:
    """The persisted indexes in `folder`, or new ones built from the knowledge base's chunks
    (older versions beside it are removed); None when nothing is indexed."""
    from llama_index.retrievers.bm25 import BM25Retriever

    section_folder = folder / f"sections-{section_chunks}"
    if folder.is_dir() and section_folder.is_dir():
        try:
            return KeywordIndexes.from_retrievers(
                *(
                    BM25Retriever.from_persist_dir(str(path), show_progress=False)
                    for path in (folder, section_folder)
                )
            )
        except Exception:  # a damaged or older index: rebuild it
            log.warning("rebuilding unreadable keyword index %s", folder)
    nodes = kb.all_nodes()
    if not nodes:
        return None
    sections = build_sections(nodes, kb.document_texts(), section_chunks)
    retrievers = [
        bm25_retriever(nodes, [chunk_keyword_text(node) for node in nodes]),
        bm25_retriever(sections),
    ]
    # Written beside, then renamed into place: another process (a second `rag ask`, the page)
    # may be building or loading the same version at the same moment.
    scratch = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(scratch, ignore_errors=True)
    for retriever, path in zip(retrievers, (scratch, scratch / section_folder.name), strict=True):
        retriever.persist(str(path), show_progress=False)
    for old in older_versions(folder):
        shutil.rmtree(old, ignore_errors=True)
    if folder.is_dir() and not section_folder.is_dir():  # an incomplete older write
        shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(scratch, folder)
    except OSError:  # another process put the same version in place first
        shutil.rmtree(scratch, ignore_errors=True)
    return KeywordIndexes.from_retrievers(*retrievers)
