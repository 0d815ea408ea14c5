"""Which answers of a `rag eval` report the rule against echoed answers
(`rag.answer.citations.adds_to_question`) decides: the citation check is replayed on each raw
answer and the passages it was shown, with the rule and without it, and every answer whose
outcome differs is listed. On a report made before the rule, these are the only answers of that
run the rule can change (the model's raw answers do not depend on the check); on one made with
it, they are the answers it refused.

    python evals/reports/session16/echoed_answers.py REPORT.json...
"""

import sys

from rag_eval.replay import replay

replay(sys.argv[1:], "adds_to_question", lambda answer, question: True)
