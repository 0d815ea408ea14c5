"""The final outcomes (citation check, then verifier) of reported raw answers under two verifier
models, listed where they differ; by `rag_eval.replay.final_outcome`. For sets no verifier was
fitted on (real documents B, the injection set), where the shipped model decides every question:

    RAG_DATA_DIR=DIR .venv/bin/python evals/reports/session18/verifier-refit/compare_verifiers.py \
        rag/answer/verifier/support.json CANDIDATE.json REPORT.json...

CANDIDATE.json is what `rag_eval.train_verifier` writes to rag/answer/verifier/support.json (run
it in a separate worktree: it also rewrites evals/verifier-folds/).
"""

import collections
import json
import sys
from pathlib import Path

from rag import prompts
from rag.answer.verifier import FittedVerifier
from rag.compose import build_engine
from rag.config import get_settings
from rag.text import is_refusal_text
from rag_eval.replay import final_outcome
from rag_eval.runners import passages_from_dicts

settings = get_settings()
encoder = build_engine(settings).kb.embedder
current, candidate = (FittedVerifier.load(Path(p), encoder) for p in sys.argv[1:3])
refusal = prompts.refusal_text()
for path in sys.argv[3:]:
    rows = json.loads(Path(path).read_text(encoding="utf-8"))["rows"]
    counts: collections.Counter = collections.Counter()
    for row in rows:
        passages = passages_from_dicts(row.get("passages") or [])
        if not row.get("raw_answer") or not passages or is_refusal_text(row["raw_answer"]):
            continue
        args = (row, passages)
        now = final_outcome(*args, current, settings.long_question_words, refusal)
        then = final_outcome(*args, candidate, settings.long_question_words, refusal)
        if now != then:
            kind = "answerable" if row["answerable"] else "unanswerable"
            counts[(kind, f"{now} -> {then}")] += 1
            print(f"  {kind}, {now} -> {then}: {row['question_used']}")
    print(path, dict(counts) or "no change", flush=True)
