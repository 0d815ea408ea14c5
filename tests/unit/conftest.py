from __future__ import annotations

import pytest
from fakes import FakeEmbedding

from rag.knowledge_base import KnowledgeBase


@pytest.fixture
def seed_kb(settings, seed_dir):
    """The seed article in a knowledge base with the bag-of-words embedder."""
    settings.min_dense_score = 0.1  # bag-of-words similarities are lower than MiniLM's
    knowledge_base = KnowledgeBase(settings, FakeEmbedding())
    knowledge_base.ingest([seed_dir])
    return knowledge_base
