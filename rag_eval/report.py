"""Reports: one list of blocks rendered both as Markdown and as HTML (with plots), and the
JSON of every row. Benchmarks build their reports from the same blocks."""

from __future__ import annotations

import base64
import html
import json
import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_eval.metrics import ANSWER_KEYS, LATENCY_KEYS, RETRIEVAL_KEYS, TOKEN_KEYS
from rag_eval.runners import short

log = logging.getLogger(__name__)

MAX_FAILURE_ROWS = 60

# ("h1" | "h2" | "h3", text), ("p", text), ("ul", [item, ...]), ("code", text),
# ("table", headers, rows), ("img", title, Path). Text in p and ul items may hold `code` spans.
Block = tuple[Any, ...]


def fmt(value: Any, key: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if key.endswith(("_ms_p50", "_ms_p95", "_mean")):
            return f"{value:,.0f}" if key.endswith(("_p50", "_p95")) else f"{value:,.1f}"
        return f"{value:.3f}"
    return str(value)


def _ratio(rag: Any, base: Any) -> str:
    if not isinstance(rag, int | float) or not isinstance(base, int | float) or not base:
        return "–"
    return f"{rag / base:.2f}×"


def metric_table(
    summary: dict,
    base: dict | None,
    keys: Sequence[str],
    names: tuple[str, str] = ("rag", "baseline"),
) -> Block:
    headers = ["metric", names[0]] + ([names[1], f"{names[0]} / {names[1]}"] if base else [])
    rows = []
    for key in keys:
        if key not in summary and not (base and key in base):
            continue
        row = [key, fmt(summary.get(key), key)]
        if base:
            row += [fmt(base.get(key), key), _ratio(summary.get(key), base.get(key))]
        rows.append(row)
    return ("table", headers, rows)


def type_table(types: dict, base_types: dict | None, keys: Sequence[str]) -> Block:
    headers = ["question type", "n", *keys]
    rows = []
    for name, summary in types.items():
        base = (base_types or {}).get(name)
        cells = [name, str(summary["questions"])]
        for key in keys:
            cell = fmt(summary.get(key), key)
            if base is not None:
                cell += f" ({fmt(base.get(key), key)})"
            cells.append(cell)
        rows.append(cells)
    return ("table", headers, rows)


def _cited_cell(row: dict) -> str:
    passages = {p["n"]: p for p in row.get("passages") or []}
    cited = [n for n in row.get("cited") or [] if n in passages]
    label, numbers = ("cited", cited) if cited else ("shown, none cited", list(passages))
    if not numbers:
        return "(no passage shown)"
    parts = [f"[{n}] {passages[n]['doc_id']}: {short(passages[n]['text'], 160)}" for n in numbers]
    return f"{label}: " + " ".join(parts)


def _failure_blocks(rows: list[dict], base_rows: list[dict] | None, full: bool) -> list[Block]:
    base_by_id = {r["id"]: r for r in base_rows or []}
    if full:
        failures = [
            r for r in rows if not r["correct"] or r["citation_valid"] is False or r["error"]
        ]
        headers = ["id", "type", "question", "answer", "gold", "cited passages"]
        if base_rows is not None and any("answer" in r for r in base_rows):
            headers.append("baseline answer")
        table = []
        for r in failures[:MAX_FAILURE_ROWS]:
            answer = r["answer"] if not r["error"] else f"ERROR: {r['error']}"
            if r["refused"]:
                answer += f" (refused by {r['refused_by']})"
            gold = " | ".join(r["golds"]) if r["answerable"] else "(unanswerable: refuse)"
            cells = [r["id"], r["question_type"], short(r["question"], 160), short(answer)]
            cells += [short(gold, 120), _cited_cell(r)]
            if len(headers) == 7:
                cells.append(short(base_by_id.get(r["id"], {}).get("answer"), 200))
            table.append(cells)
        intro = (
            f"{len(failures)} of {len(rows)} questions wrong (answerable: gold not in the answer "
            "or refused; unanswerable: not refused), with an invalid citation, or an error."
        )
    else:
        failures = [r for r in rows if r.get("retrieval") and not r["retrieval"]["hits@10"]]
        headers = ["id", "type", "question", "gold evidence", "top retrieved"]
        table = []
        for r in failures[:MAX_FAILURE_ROWS]:
            top = " ".join(f"{t['doc_id']}: {short(t['text'], 120)}" for t in r["top"][:2])
            evidence = " | ".join(short(f, 120) for f in r["facts"][:2])
            table.append(
                [r["id"], r["question_type"], short(r["question"], 160), evidence or "–", top]
            )
        intro = f"{len(failures)} answerable questions with no relevant chunk in the top 10."
    if len(failures) > MAX_FAILURE_ROWS:
        intro += f" The first {MAX_FAILURE_ROWS} are listed; all rows are in the JSON report."
    return [("h2", "Failures"), ("p", intro), ("table", headers, table)]


@dataclass
class Results:
    """One system's run: its summary, the summaries per question type, and every row."""

    summary: dict
    per_type: dict
    rows: list[dict]


def _plots(
    out: Path, name: str, ours: Results, theirs: Results | None, full: bool
) -> list[tuple[str, Path]]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed (pip install '.[eval]'): no plots")
        return []
    summary, types, rows = ours.summary, ours.per_type, ours.rows
    base, base_types, base_rows = (
        (theirs.summary, theirs.per_type, theirs.rows) if theirs else (None, None, None)
    )
    plots: list[tuple[str, Path]] = []
    colors = {"rag": "#2b6cb0", "baseline": "#b7791f"}

    def save(fig: Any, suffix: str, title: str) -> None:
        path = out / f"{name}-{suffix}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        plots.append((title, path))

    def paired_bars(ax: Any, labels: list[str], ours: list[float], theirs: list[float] | None):
        """rag's bars, with the baseline's beside them when there is one."""
        width = 0.4 if theirs is not None else 0.6
        xs = range(len(labels))
        shift = width / 2 if theirs is not None else 0
        ax.bar([x - shift for x in xs], ours, width, label="rag", color=colors["rag"])
        if theirs is not None:
            ax.bar(
                [x + shift for x in xs], theirs, width, label="baseline", color=colors["baseline"]
            )
        ax.set_xticks(list(xs), labels, rotation=35, ha="right")
        ax.set_ylim(0, 1.2)
        ax.legend(loc="upper center", ncol=2)

    keys = [k for k in (*RETRIEVAL_KEYS, *ANSWER_KEYS) if summary.get(k) is not None]
    if keys:
        fig, ax = plt.subplots(figsize=(max(6, 0.75 * len(keys) + 2), 4))
        paired_bars(
            ax,
            keys,
            [summary[k] for k in keys],
            [base.get(k) or 0 for k in keys] if base else None,
        )
        ax.set_title("Metrics (higher is better, except wrong_refusal_rate)")
        save(fig, "metrics", "Metrics: rag vs baseline")

    panels = [("hits@10", "Hits@10 (answerable)")]
    if full:
        panels.append(("correct_rate", "Correct (answer has gold / refused unanswerable)"))
    panel_width = max(6, 1.1 * len(types) + 2)
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_width * len(panels), 4))
    axes = axes if len(panels) > 1 else [axes]
    for ax, (key, title) in zip(axes, panels, strict=True):
        names = [t for t in types if types[t].get(key) is not None]
        paired_bars(
            ax,
            names,
            [types[t].get(key) or 0 for t in names],
            [(base_types.get(t) or {}).get(key) or 0 for t in names] if base_types else None,
        )
        ax.set_title(title)
    save(fig, "types", "Per question type")

    latency_key = "total_ms" if full else "retrieval_ms"
    series = [("rag", [r["timings"][latency_key] for r in rows if latency_key in r["timings"]])]
    if base_rows:
        values = [r["timings"][latency_key] for r in base_rows if latency_key in r["timings"]]
        series.append(("baseline", values))
    if any(values for _, values in series):
        fig, ax = plt.subplots(figsize=(7, 4))
        for label, values in series:
            if values:
                ax.hist(values, bins=30, alpha=0.6, label=label, color=colors[label])
        ax.set_xlabel(f"{latency_key} (ms)")
        ax.set_ylabel("questions")
        ax.set_title(f"Latency: {latency_key}")
        ax.legend()
        save(fig, "latency", f"Latency histogram ({latency_key})")
    return plots


def render_markdown(blocks: Sequence[Block]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            lines += [f"# {block[1]}", ""]
        elif kind == "h2":
            lines += [f"## {block[1]}", ""]
        elif kind == "h3":
            lines += [f"### {block[1]}", ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "ul":
            lines += [*(f"- {item}" for item in block[1]), ""]
        elif kind == "code":
            lines += ["```", block[1], "```", ""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines.append("| " + " | ".join(cell(h) for h in headers) + " |")
            lines.append("|" + "|".join("---" for _ in headers) + "|")
            lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            lines += [f"![{block[1]}]({block[2].name})", ""]
    return "\n".join(lines)


def _inline_html(text: str) -> str:
    """Escaped text with its `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def render_html(blocks: Sequence[Block], title: str) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}",
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}",
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}",
        "th{background:#f2f2f2}code,pre{background:#f6f6f6;padding:2px 4px}",
        "pre{padding:8px;white-space:pre-wrap}img{max-width:100%}",
        "</style></head><body>",
    ]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "ul":
            items = "".join(f"<li>{_inline_html(item)}</li>" for item in block[1])
            parts.append(f"<ul>{items}</ul>")
        elif kind == "code":
            parts.append(f"<pre>{esc(block[1])}</pre>")
        elif kind == "table":
            parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in block[1]) + "</tr>")
            for row in block[2]:
                parts.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        elif kind == "img":
            data = base64.b64encode(block[2].read_bytes()).decode()
            parts.append(
                f"<figure><img alt='{esc(block[1])}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{esc(block[1])}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


@dataclass
class RunInfo:
    name: str
    dataset: str
    command: str
    corpus: Path
    questions: Path
    collection: str
    full: bool
    baseline_name: str | None
    settings: dict[str, Any]
    commit: str | None
    code: str | None  # hash of rag/*.py and prompts/*.txt: tells uncommitted changes apart
    timestamp: str
    ingest: dict[str, float]  # added, unchanged, chunks; seconds (embedding and writing)
    judge: dict[str, Any] | None
    notes: list[str]
    load: dict[str, Any] = field(default_factory=dict)


def _ingest_speed(ingest: dict[str, float]) -> str:
    """' in 301 s (97.4 chunks/s); keyword indexes built in 12 s' when chunks were written."""
    seconds = ingest.get("seconds")
    if not ingest.get("chunks") or not seconds:
        return ""
    text = f" in {seconds:.0f} s ({ingest['chunks'] / seconds:.1f} chunks/s)"
    if ingest.get("keyword_index_seconds") is not None:
        text += f"; keyword indexes built in {ingest['keyword_index_seconds']:.0f} s"
    return text


def write_report(
    out: Path,
    info: RunInfo,
    ours: Results,
    theirs: Results | None = None,
    keyword: dict[str, Any] | None = None,
) -> Path:
    summary, types, rows = ours.summary, ours.per_type, ours.rows
    base, base_types, base_rows = (
        (theirs.summary, theirs.per_type, theirs.rows) if theirs else (None, None, None)
    )
    out.mkdir(parents=True, exist_ok=True)
    mode = "answers + retrieval" if info.full else "retrieval only"
    blocks: list[Block] = [
        ("h1", f"rag eval: {info.dataset} ({mode})"),
        ("p", "Produced by:"),
        ("code", info.command),
        (
            "p",
            f"{info.timestamp} · commit {info.commit or 'unknown'} (code {info.code}) · "
            f"{summary['questions']} questions ({summary['answerable']} answerable, "
            f"{summary['unanswerable']} unanswerable) · corpus `{info.corpus}` · questions "
            f"`{info.questions}` · collection `{info.collection}` (ingest: "
            f"{info.ingest['added']} added, {info.ingest['unchanged']} already there, "
            f"{info.ingest['chunks']} chunks written{_ingest_speed(info.ingest)}).",
        ),
        ("p", "Settings: " + ", ".join(f"{k}={v}" for k, v in info.settings.items())),
    ]
    if info.load:
        blocks.append(
            (
                "p",
                f"Machine: {info.load['cpus']} CPUs; load average {info.load['start']} at the "
                f"start, {info.load['end']} at the end (latencies depend on it: the machine may "
                "be shared).",
            )
        )
    if info.baseline_name:
        blocks.append(("p", f"Baseline: {info.baseline_name}."))
    blocks += [("p", note) for note in info.notes]
    blocks += [
        ("h2", "Summary"),
        metric_table(summary, base, [*RETRIEVAL_KEYS, *ANSWER_KEYS]),
        ("h2", "Latency and tokens"),
        metric_table(summary, base, [*LATENCY_KEYS, *TOKEN_KEYS, "errors"]),
    ]
    if info.judge:
        blocks.append(
            (
                "p",
                f"Citation judge: {info.judge['model']}; {info.judge['calls']} calls, "
                f"{info.judge['unparsed']} replies not YES/NO (counted NO), "
                f"{info.judge['errors']} errors.",
            )
        )
    refusals = defaultdict(int)
    for r in rows:
        if r.get("refused"):
            refusals[r["refused_by"]] += 1
    if refusals:
        blocks.append(
            (
                "p",
                "rag refusals by cause: "
                + ", ".join(f"{k}: {v}" for k, v in sorted(refusals.items()))
                + " (retrieval = nothing relevant shown; model = the LLM declined; check = the "
                "citation check dropped every claim; verifier = the first claim's support was "
                "below the threshold).",
            )
        )
    raw_valid = [r["raw_citation_valid"] for r in rows if r.get("raw_citation_valid") is not None]
    if raw_valid:
        blocks.append(
            (
                "p",
                f"Raw model output (before the citation filter and check): citations valid in "
                f"{sum(raw_valid)}/{len(raw_valid)} non-refusing replies.",
            )
        )
    blocks += [
        ("h2", "Per question type" + (" (baseline in parentheses)" if base_types else "")),
        type_table(types, base_types, RETRIEVAL_KEYS),
    ]
    if info.full:
        blocks.append(type_table(types, base_types, [*ANSWER_KEYS, "total_ms_p50"]))
    if keyword:
        blocks += [
            ("h2", "BM25 only (rag in parentheses)"),
            (
                "p",
                "llama-index's BM25Retriever (bm25s) alone over the same sections rag ranks "
                "(section_chunks consecutive chunks with title, source and date), top 10, the "
                "whole question as the query: no publisher/date plan, no dense retrieval.",
            ),
            metric_table(
                keyword["summary"], summary, [*RETRIEVAL_KEYS, "retrieval_ms_p50"], ("BM25", "rag")
            ),
            type_table(keyword["per_type"], types, RETRIEVAL_KEYS),
        ]
    blocks.append(("h2", "Plots"))
    for title, path in _plots(out, info.name, ours, theirs, info.full):
        blocks.append(("img", title, path))
    blocks += _failure_blocks(rows, base_rows, info.full)

    md_path = out / f"{info.name}.md"
    md_path.write_text(render_markdown(blocks), encoding="utf-8")
    (out / f"{info.name}.html").write_text(
        render_html(blocks, f"rag eval: {info.dataset}"), encoding="utf-8"
    )
    details = {
        "run": {k: str(v) if isinstance(v, Path) else v for k, v in info.__dict__.items()},
        "summary": summary,
        "baseline": base,
        "per_type": types,
        "baseline_per_type": base_types,
        "bm25_only": keyword,
        "rows": [_public(r) for r in rows],
        "baseline_rows": [_public(r, slim=True) for r in base_rows or []],
    }
    (out / f"{info.name}.json").write_text(
        json.dumps(details, ensure_ascii=False), encoding="utf-8"
    )
    return md_path


def _public(row: dict[str, Any], slim: bool = False) -> dict[str, Any]:
    """A row for the JSON report; slim drops what the rag row of the question already has."""
    repeated = ("question", "golds", "gold_doc_ids", "facts") if slim else ()
    return {k: v for k, v in row.items() if not k.startswith("_") and k not in repeated}
