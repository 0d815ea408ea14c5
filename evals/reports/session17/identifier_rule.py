"""Which answers of `rag eval` reports the identifier rule decides
(`rag.answer.citations.names_asked_identifiers`: each identifier a short question names must be
spelt out in a passage the answer cites or in that passage's context), by `rag_eval.replay`.

    python evals/reports/session17/identifier_rule.py REPORT.json...
"""

import sys

from rag_eval.replay import replay

replay(sys.argv[1:], "question_identifiers", lambda question: [])
