"""Check the prompt-injection eval set (docs/, manifest.jsonl, questions.jsonl) for consistency.

Run: .venv/bin/python evals/injection/validate.py   (exit status 1 on any error)

Checks: every line parses; ids unique; every gold_doc_id / payload_doc exists in docs/; every
evidence fact (5-25 words) occurs whitespace-insensitively in the document's *genuine* content:
the file with its manifest `injection` cut out and, for HTML, the visible text (BeautifulSoup
get_text with script/style/comments removed); every payload occurs (case-insensitively) in its
payload_doc's raw file and inside that document's injection; no payload occurs in a gold answer or
evidence fact, or in the genuine content of any document (so a scorer may also use the union of
all payloads); one gold answer occurs in the genuine content; each document has an answerable
question, 150-600 words, and the minimum counts of the brief are met.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

from bs4 import BeautifulSoup, Comment

HERE = Path(__file__).resolve().parent
DOCS = HERE / "docs"
STYLES = {
    "plain_imperative",
    "note_for_ai",
    "html_comment",
    "script",
    "hidden_html",
    "fake_role_tag",
    "fake_qa",
    "false_fact",
    "cross_doc_leak",
    "non_english",
    "obfuscated",
    "unanswerable_lure",
}
LANGUAGES = {"de", "fr", "es", "ru", "zh", "ja", "ar"}
errors: list[str] = []


def err(msg: str) -> None:
    errors.append(msg)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def visible(raw: str) -> str:
    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    for c in soup.find_all(string=lambda s: isinstance(s, Comment)):
        c.extract()
    return soup.get_text(" ")


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            err(f"{path.name}:{n}: does not parse ({exc})")
    return rows


manifest = {m["doc_id"]: m for m in read_jsonl(HERE / "manifest.jsonl")}
files = {p.name: p for p in DOCS.iterdir() if p.is_file()}
if set(manifest) != set(files):
    err(f"manifest and docs/ differ: {sorted(set(manifest) ^ set(files))}")

raw: dict[str, str] = {}
genuine: dict[str, str] = {}  # what a reader of the real content sees, injection cut out
for name, path in sorted(files.items()):
    text = path.read_text(encoding="utf-8")
    raw[name] = text
    m = manifest.get(name)
    if m is None:
        continue
    if m["style"] not in STYLES:
        err(f"{name}: unknown style {m['style']!r}")
    if m["injection"] not in text:
        err(f"{name}: manifest injection is not a verbatim part of the file")
    rest = text.replace(m["injection"], " ")
    is_html = name.endswith((".html", ".htm"))
    genuine[name] = visible(rest) if is_html else rest
    words = len((visible(text) if is_html else text).split())
    if not 150 <= words <= 600:
        err(f"{name}: {words} words (want 150-600)")
    for p in m["payloads"]:
        if p.lower() not in text.lower():
            err(f"{name}: payload {p!r} not in the raw file")
        elif p.lower() not in m["injection"].lower():
            err(f"{name}: payload {p!r} is outside the injection")

all_payloads = {p.lower(): d for d, m in manifest.items() for p in m["payloads"]}
for p, owner in all_payloads.items():
    for name, text in genuine.items():
        if p in text.lower():
            err(f"payload {p!r} (of {owner}) occurs in the genuine content of {name}")

questions = read_jsonl(HERE / "questions.jsonl")
ids = Counter(q.get("id") for q in questions)
for i, c in ids.items():
    if c > 1:
        err(f"duplicate id {i}")
keys = {
    "id",
    "question",
    "answers",
    "answerable",
    "question_type",
    "gold_doc_ids",
    "evidence",
    "payloads",
    "payload_doc",
}
answered_docs: set[str] = set()
for q in questions:
    qid = q.get("id", "?")
    if missing := keys - set(q):
        err(f"{qid}: missing {sorted(missing)}")
        continue
    if q["question_type"] not in STYLES:
        err(f"{qid}: unknown question_type {q['question_type']!r}")
    if q["payload_doc"] not in files:
        err(f"{qid}: payload_doc {q['payload_doc']} not in docs/")
        continue
    for d in q["gold_doc_ids"]:
        if d not in files:
            err(f"{qid}: gold doc {d} not in docs/")
    if not q["payloads"]:
        err(f"{qid}: no payloads")
    for p in q["payloads"]:
        if p.lower() not in raw[q["payload_doc"]].lower():
            err(f"{qid}: payload {p!r} not in {q['payload_doc']}")
        for a in q["answers"]:
            if p.lower() in a.lower() or a.lower() in p.lower():
                err(f"{qid}: payload {p!r} and gold {a!r} overlap")
    if q["answerable"]:
        if not q["answers"] or not q["evidence"] or not q["gold_doc_ids"]:
            err(f"{qid}: answerable but answers/evidence/gold_doc_ids empty")
        answered_docs.update(q["gold_doc_ids"])
        for ev in q["evidence"]:
            d, fact = ev["doc_id"], ev["fact"]
            if d not in q["gold_doc_ids"] or d not in genuine:
                err(f"{qid}: evidence doc {d} not a gold doc in docs/")
                continue
            if not 5 <= len(fact.split()) <= 25:
                err(f"{qid}: fact has {len(fact.split())} words (want 5-25)")
            if squash(fact) not in squash(genuine[d]):
                err(f"{qid}: fact not in the genuine content of {d}: {fact!r}")
            if any(p in fact.lower() for p in all_payloads):
                err(f"{qid}: fact contains a payload")
        golds = [d for d in q["gold_doc_ids"] if d in genuine]
        if golds and not any(
            squash(a) in squash(" ".join(genuine[d] for d in golds)) for a in q["answers"]
        ):
            err(f"{qid}: no gold answer occurs in the gold documents")
    elif q["answers"] or q["evidence"] or q["gold_doc_ids"]:
        err(f"{qid}: unanswerable but has answers/evidence/gold_doc_ids")

for name in files:
    if name not in answered_docs:
        err(f"{name}: no answerable question")

# minimum counts of the brief
fmt = Counter(m["format"] for m in manifest.values())
sty = Counter(m["style"] for m in manifest.values())
langs = {m["injection_language"] for m in manifest.values()}
qtype = Counter(q["question_type"] for q in questions)
cross = sum(1 for q in questions if q["answerable"] and q["payload_doc"] not in q["gold_doc_ids"])
unans = sum(1 for q in questions if not q["answerable"])
if len(files) < 36:
    err(f"{len(files)} documents (want >= 36)")
for f in ("txt", "md", "html"):
    if fmt[f] < 8:
        err(f"{fmt[f]} .{f} documents (want >= 8)")
for s in STYLES:
    if sty[s] < 2:
        err(f"style {s}: {sty[s]} documents (want >= 2)")
if LANGUAGES - langs:
    err(f"languages missing: {sorted(LANGUAGES - langs)}")
if len(questions) < 60:
    err(f"{len(questions)} questions (want >= 60)")
if cross < 12:
    err(f"{cross} cross-document questions (want >= 12)")
if unans < 8:
    err(f"{unans} unanswerable questions (want >= 8)")

print(f"documents: {len(files)}  by format: {dict(sorted(fmt.items()))}")
print(f"documents by style: {dict(sorted(sty.items()))}")
lang_counts = Counter(m["injection_language"] for m in manifest.values())
print(f"injection languages: {dict(sorted(lang_counts.items()))}")
print(
    f"questions: {len(questions)}  answerable: {len(questions) - unans}  unanswerable: {unans}  "
    f"cross-document (payload_doc not gold): {cross}"
)
print(f"questions by type: {dict(sorted(qtype.items()))}")
print(f"distinct payload strings: {len(all_payloads)}")
if errors:
    print(f"\n{len(errors)} ERROR(S):")
    for e in errors:
        print(" -", e)
    sys.exit(1)
print("OK")
