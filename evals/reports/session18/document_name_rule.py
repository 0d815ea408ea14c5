"""Which answers of `rag eval` reports the document-name rule decides
(`rag.answer.citations.document_name_terms`: a whole name of an answer that stands in the cited
document's file name, such as "PostgreSQL 15" of postgresql-15-wal-config.html, is supported),
with the citation check and the shipped verifier, by `rag_eval.replay.replay_outcomes`. Run on a
data dir holding the models (the verifier reads the embedder):

    RAG_DATA_DIR=DIR .venv/bin/python evals/reports/session18/document_name_rule.py REPORT.json...
"""

import sys

from rag.compose import build_engine
from rag.config import get_settings
from rag_eval.replay import replay_outcomes

settings = get_settings()
verifier = build_engine(settings).verifier
replay_outcomes(
    sys.argv[1:],
    "document_name_terms",
    lambda passages: set(),
    verifier,
    settings.long_question_words,
)
