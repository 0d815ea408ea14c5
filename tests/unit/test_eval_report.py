"""The eval's reports (rag_eval.report): blocks rendered as Markdown and HTML."""

from __future__ import annotations

from rag_eval.report import _ingest_speed, render_html, render_markdown


def test_ingest_speed_is_reported_only_when_chunks_were_written():
    assert _ingest_speed({"added": 0, "chunks": 0, "seconds": 0.4}) == ""
    assert (
        _ingest_speed({"chunks": 1000, "seconds": 8.0, "keyword_index_seconds": 2.2})
        == " in 8 s (125.0 chunks/s); keyword indexes built in 2 s"
    )


def test_blocks_render_as_markdown_and_escaped_html():
    blocks = [
        ("h1", "rag eval: tiny"),
        ("p", "Run `rag eval` <now>."),
        ("table", ["metric", "rag"], [["hits@4", "1.0"], ["a|b", "<i>x</i>"]]),
        ("code", "x = 1"),
    ]
    markdown = render_markdown(blocks)
    assert markdown.startswith("# rag eval: tiny\n")
    assert "| metric | rag |\n|---|---|\n| hits@4 | 1.0 |\n| a\\|b | <i>x</i> |" in markdown
    assert "```\nx = 1\n```" in markdown
    page = render_html(blocks, "tiny <report>")
    assert page.startswith("<!doctype html>") and "<title>tiny &lt;report&gt;</title>" in page
    assert "<p>Run <code>rag eval</code> &lt;now&gt;.</p>" in page
    assert "<td>&lt;i&gt;x&lt;/i&gt;</td>" in page and "<i>x</i>" not in page
