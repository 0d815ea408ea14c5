"""Forced attempt: should rag ask again when the model refuses, and let the citation check and
the verifier decide? For each answer the model itself refused in the given reports, the same
prompt is asked again with the refusal's second token (" documents") banned through llama.cpp's
`logit_bias`, and the reply goes through `check_answer` and the verifier as `Engine.answer`
would put it. Run with no other `rag` process on the machine, on a data dir holding the models
(only the embedder is read; the passages come from the reports):

    RAG_DATA_DIR=DIR .venv/bin/python evals/reports/session18/forced_attempt.py \
        evals/reports/session17/seed/seed.json evals/reports/session17/realdocs/realdocs.json \
        evals/reports/session17/realdocs-b/realdocs-b.json \
        evals/reports/session17/realdocs-evidence-removed/realdocs-evidence-removed.json \
        evals/reports/session17/injection/injection.json
"""

import collections
import json
import sys

import httpx

from rag import prompts
from rag.answer.context import answer_messages, prompt_prefix
from rag.compose import build_engine
from rag.config import get_settings
from rag.llm.local import connect_local_llm
from rag.text import is_refusal_text
from rag_eval.replay import final_outcome
from rag_eval.runners import passages_from_dicts


def main(paths: list[str]) -> None:
    settings = get_settings()
    llm = connect_local_llm(settings)
    engine = build_engine(settings, connect_llm=lambda: llm)
    engine.warm_up(follow_ups=False)
    root = llm.base_url.removesuffix("/v1")
    refusal = prompts.refusal_text()
    banned = httpx.post(f"{root}/tokenize", json={"content": " documents"}).json()["tokens"]
    print("banned tokens", banned, flush=True)
    prefix = prompt_prefix()
    total: collections.Counter = collections.Counter()
    for path in paths:
        counts: collections.Counter = collections.Counter()
        with open(path, encoding="utf-8") as report:
            rows = json.load(report)["rows"]
        for row in rows:
            if row.get("refused_by") != "model":
                continue
            passages = passages_from_dicts(row["passages"])
            question = row["question_used"]
            reply = httpx.post(
                f"{llm.base_url}/chat/completions",
                json={
                    "messages": answer_messages(prefix, passages, question),
                    "max_tokens": 160,
                    "temperature": 0,
                    "logit_bias": [[t, -100] for t in banned],
                },
                timeout=120,
            ).json()
            raw = reply["choices"][0]["message"]["content"].strip()
            kind = "ans" if row["answerable"] else "unans"
            if is_refusal_text(raw):
                outcome = "refused anyway"
            else:
                replayed = {**row, "raw_answer": raw}
                outcome = final_outcome(
                    replayed, passages, engine.verifier, settings.long_question_words, refusal
                )
            counts[(kind, outcome)] += 1
            print(f"{kind:5} {outcome:24} | {question[:80]} | {raw[:110]!r}", flush=True)
        print(path, sorted(counts.items()), flush=True)
        total.update(counts)
    print("ALL", sorted(total.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
