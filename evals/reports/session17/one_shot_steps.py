"""Where a cold one-shot `rag ask` spends its time: the steps of `rag.cli.cmd_ask`, timed from
the process start, on a data dir with the seed article ingested (and `rag setup` run). Run it in a
fresh process each time, with no other `rag` process on the machine:

    RAG_DATA_DIR=DIR .venv/bin/python evals/reports/session17/one_shot_steps.py
"""

import sys
import time

STARTED = time.perf_counter()


def mark(step: str) -> None:
    print(f"{time.perf_counter() - STARTED:6.2f} s  {step}", file=sys.stderr)


from rag.config import get_settings  # noqa: E402

settings = get_settings()
mark("settings read")
from rag.llm.local import ModelProcess  # noqa: E402

child = ModelProcess.start(settings)
mark("model process started")
from rag.compose import build_engine, build_llm  # noqa: E402

mark("rag.compose imported (llama-index, Chroma, the embedder)")
engine = build_engine(
    settings, connect_llm=lambda: (child and child.llm(settings)) or build_llm(settings)
)
mark("engine built")
engine.retriever.retrieve("warm-up")
mark("first search (keyword index loaded, embedder run)")
engine.llm  # noqa: B018
mark("model connected (the OpenAI client imported meanwhile)")
engine.warm_up(follow_ups=False)
mark("prompt prefix restored")
result = engine.ask("Who led Russia's delegation?")
mark(f"answered: {result.answer!r} {result.timings}")
if child is not None:
    child.stop()
