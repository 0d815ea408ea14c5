"""The knowledge base: documents, their chunks and embeddings in Chroma."""

from rag.knowledge_base.chroma import node_from_record
from rag.knowledge_base.records import (
    DocumentInfo,
    FileError,
    IndexMismatchError,
    IngestReport,
    Progress,
)
from rag.knowledge_base.store import KnowledgeBase, doc_id_for

__all__ = [
    "DocumentInfo",
    "FileError",
    "IndexMismatchError",
    "IngestReport",
    "KnowledgeBase",
    "Progress",
    "doc_id_for",
    "node_from_record",
]
