"""`rag` logs warnings and errors by default, debug lines with -v (`rag -v …` or `rag serve -v`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rag.cli import build_parser

LOG_SOME = """
import logging, sys
from rag.cli import configure_logging
configure_logging(sys.argv[1] == "verbose")
import bm25s  # sets its own logger to DEBUG on import
logging.getLogger("bm25s").debug("bm25s debug line")
logging.getLogger("rag.retrieval").debug("rag debug line")
logging.getLogger("rag.web").warning("rag warning line")
"""


@pytest.mark.parametrize(
    ("mode", "shown", "hidden"),
    [
        ("quiet", ["rag warning line"], ["bm25s debug line", "rag debug line"]),
        ("verbose", ["rag warning line", "rag debug line"], []),
    ],
)
def test_log_threshold(mode: str, shown: list[str], hidden: list[str]) -> None:
    err = subprocess.run(
        [sys.executable, "-c", LOG_SOME, mode], capture_output=True, text=True, check=True
    ).stderr
    assert all(line in err for line in shown), err
    assert not any(line in err for line in hidden), err


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["serve"], False),
        (["serve", "-v"], True),
        (["serve", "--verbose"], True),
        (["-v", "serve"], True),
        (["-v", "ask", "q"], True),
    ],
)
def test_verbose_flag_before_or_after_serve(argv: list[str], verbose: bool) -> None:
    assert build_parser().parse_args(argv).verbose is verbose
