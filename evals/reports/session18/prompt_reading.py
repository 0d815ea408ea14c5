"""How many new prompt tokens the model reads for a question, and how long that takes: the seed
question asked of the shipped model's own server (started by this script) once its fixed prefix
is restored, with the
server's own counts (llama.cpp's `timings` on the last streamed chunk). Run on a data dir with
the seed article ingested and no other `rag` process on the machine:

    RAG_DATA_DIR=DIR .venv/bin/python evals/reports/session18/prompt_reading.py ["QUESTION"]
"""

import json
import sys

import httpx

from rag.answer.context import answer_messages, prompt_prefix, select_passages
from rag.compose import build_engine
from rag.config import get_settings
from rag.llm.local import connect_local_llm

question = sys.argv[1] if len(sys.argv) > 1 else "Who led Russia's delegation?"
settings = get_settings()
llm = connect_local_llm(settings)
engine = build_engine(settings, connect_llm=lambda: llm)
passages = select_passages(engine.retriever.retrieve(question), settings, engine.kb.document)
messages = answer_messages(prompt_prefix(), passages, question)
engine.warm_up(follow_ups=False)  # the prefix alone in a slot, as after a start
timings = {}
request = {"messages": messages, "max_tokens": 64, "temperature": 0, "stream": True}
with httpx.stream("POST", f"{llm.base_url}/chat/completions", json=request, timeout=120) as reply:
    for line in reply.iter_lines():
        if line.startswith("data: {"):
            timings = json.loads(line[6:]).get("timings", timings)
print({k: timings.get(k) for k in ("cache_n", "prompt_n", "prompt_ms", "predicted_n")})
