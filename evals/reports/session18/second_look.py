"""Second look: for each answer the model itself refused in a report, the same conversation goes
on (the refused prompt, the refusal, one more user turn asking it to read the passages again),
and the new reply goes through the citation check and the verifier as `Engine.answer` would
put it. Run with no other `rag` process on the machine, on a data dir holding the models:

    RAG_DATA_DIR=DIR .venv/bin/python evals/reports/session18/second_look.py REPORT.json...
"""

import collections
import json
import sys

from rag import prompts
from rag.answer.context import answer_messages, prompt_prefix
from rag.compose import build_engine
from rag.config import get_settings
from rag.llm.local import connect_local_llm
from rag.text import is_refusal_text
from rag_eval.replay import final_outcome
from rag_eval.runners import passages_from_dicts

SECOND_LOOK = (
    'Read the passages again. If one of them states the answer to "{question}", answer in one '
    "short sentence and put its number after the fact, like [1]. If none states it, reply "
    "exactly: {refusal}"
)

settings = get_settings()
llm = connect_local_llm(settings)
engine = build_engine(settings, connect_llm=lambda: llm)
engine.warm_up(follow_ups=False)
refusal = prompts.refusal_text()
prefix = prompt_prefix()
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as report:
        rows = json.load(report)["rows"]
    counts: collections.Counter = collections.Counter()
    for row in rows:
        if row.get("refused_by") != "model":
            continue
        passages = passages_from_dicts(row["passages"])
        question = row["question_used"]
        messages = answer_messages(prefix, passages, question)
        first = "".join(llm.stream(messages, settings.llm_max_tokens)).strip()
        messages += [
            {"role": "assistant", "content": first},
            {"role": "user", "content": SECOND_LOOK.format(question=question, refusal=refusal)},
        ]
        second = "".join(llm.stream(messages, settings.llm_max_tokens)).strip()
        if not is_refusal_text(first):
            outcome = "not refused at first this time"
        elif is_refusal_text(second):
            outcome = "refused again"
        else:
            replayed = {**row, "raw_answer": second}
            outcome = final_outcome(
                replayed, passages, engine.verifier, settings.long_question_words, refusal
            )
        kind = "ans" if row["answerable"] else "unans"
        counts[(kind, outcome)] += 1
        print(f"{kind:5} {outcome:24} | {question[:80]} | {second[:100]!r}", flush=True)
    print(path, sorted(counts.items()), flush=True)
