"""`rag_eval.replay`: a report's raw answers replayed through the citation check and the
verifier, with a rule and without it."""

from __future__ import annotations

import json

from fakes import FixedVerifier

from rag_eval.replay import replay_outcomes

SETTING = "wal_level determines how much information is written. The default value is replica."
OTHER = "This parameter can only be set in the postgresql.conf file."


def passage(n: int, text: str, start: int) -> dict:
    return {"n": n, "doc_id": "postgresql-15-wal-config.html", "text": text, "start": start,
            "end": start + len(text), "section": f"20.5.{n}"}  # fmt: skip


def row(question: str, answer: str) -> dict:
    return {
        "id": "q1",
        "question_used": question,
        "raw_answer": answer,
        "answerable": True,
        "golds": ["replica"],
        "passages": [passage(1, SETTING, 0), passage(2, OTHER, 900)],
    }


def test_only_the_answers_a_rule_decides_are_listed_with_both_outcomes(tmp_path, capsys):
    report = tmp_path / "report.json"
    rows = [
        row(
            "What is the default wal_level in PostgreSQL 15?", "It is replica in PostgreSQL 15 [1]."
        ),
        row("What does wal_level determine?", "How much information is written [1]."),
    ]
    report.write_text(json.dumps({"run": {"dataset": "x"}, "rows": rows}))
    replay_outcomes(
        [str(report)], "document_name_terms", lambda passages: set(), FixedVerifier(0.9), 20
    )
    printed = capsys.readouterr().out
    assert "without the rule refused by check, with it given right" in printed
    assert "What does wal_level determine?" not in printed  # decided alike either way
    assert "2 answers replayed" in printed

    replay_outcomes(
        [str(report)], "document_name_terms", lambda passages: set(), FixedVerifier(0.1), 20
    )
    assert "refused by check, with it refused by verifier" in capsys.readouterr().out
