"""How sure is the model when it refuses? A probe for a retry of shy refusals.

For every row of the given reports whose raw answer was the refusal, the exact answer prompt is
sent again to a running model server (`rag llm-server --port PORT`) with token log-probabilities,
and each record goes to OUT.jsonl; `--summary OUT.jsonl` then prints the table of the README.

    python evals/reports/session14/refusal_confidence.py \
        http://127.0.0.1:PORT/v1 OUT.jsonl REPORT.json...
    python evals/reports/session14/refusal_confidence.py --summary OUT.jsonl
"""

import json
import math
import statistics
import sys
from pathlib import Path

REFUSAL = "The documents do not say."


def probe(base_url: str, out_path: str, reports: list[str]) -> None:
    import openai

    from rag.answer.context import answer_messages, prompt_prefix
    from rag_eval.metrics import normalize_answer
    from rag_eval.runners import passages_from_dicts

    client = openai.OpenAI(base_url=base_url, api_key="none", timeout=120)
    prefix = prompt_prefix()
    with open(out_path, "a", encoding="utf-8") as out:
        for path in reports:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            for r in data["rows"]:
                if (r.get("raw_answer") or "").strip() != REFUSAL or not r.get("passages"):
                    continue
                shown = passages_from_dicts(r["passages"])
                question = r.get("question_used") or r["question"]
                reply = client.chat.completions.create(
                    model="rag",
                    messages=answer_messages(prefix, shown, question),
                    temperature=0,
                    max_tokens=8,
                    logprobs=True,
                    top_logprobs=5,
                )
                choice = reply.choices[0]
                text = normalize_answer(" ".join(p["text"] for p in r["passages"]))
                gold_shown = bool(r["answerable"]) and any(
                    normalize_answer(g) in text for g in r["golds"]
                )
                tokens = [
                    (t.token, t.logprob, [(a.token, a.logprob) for a in t.top_logprobs])
                    for t in choice.logprobs.content or []
                ]
                out.write(
                    json.dumps(
                        {
                            "report": data["run"]["name"],
                            "id": r["id"],
                            "answerable": bool(r["answerable"]),
                            "shown": gold_shown,
                            "text": choice.message.content,
                            "tokens": tokens,
                        }
                    )
                    + "\n"
                )


def summary(path: str) -> None:
    groups: dict[str, list[float]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if not rec["text"].startswith(REFUSAL) or len(rec["tokens"]) < 2:
            continue  # the replay answered this time (greedy decoding is not exactly repeatable)
        group = (
            "answerable, a gold answer in the passages shown"
            if rec["shown"]
            else "answerable, no gold answer shown"
            if rec["answerable"]
            else "unanswerable"
        )
        groups.setdefault(group, []).append(math.exp(rec["tokens"][1][1]))
    print("| refused questions | n | median P(' documents' after 'The') | share below 0.55 |")
    print("|---|---|---|---|")
    for group, values in sorted(groups.items()):
        below = sum(v < 0.55 for v in values) / len(values)
        print(f"| {group} | {len(values)} | {statistics.median(values):.3f} | {below:.2f} |")


if __name__ == "__main__":
    if sys.argv[1] == "--summary":
        summary(sys.argv[2])
    else:
        probe(sys.argv[1], sys.argv[2], sys.argv[3:])
