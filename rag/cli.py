"""Command line: a thin shell over the knowledge base and `Engine.answer()`."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from rag.config import Settings, get_settings
from rag.events import AnswerResult, Final, Searching, Token, Turn

DEFAULT_DOCS = Path("seeds")
VERBOSE_HELP = "log what happens, debug lines included (default: warnings and errors only)"
NO_WAIT_HELP = "fail at once, instead of waiting, while another rag process is writing"


def configure_logging(verbose: bool) -> None:
    """Warnings and errors only, unless verbose (then rag's debug lines and others' info).

    The threshold is the handler's, not just the root logger's: libraries that set their own
    loggers to DEBUG (bm25s does on import) would otherwise print through it."""
    handler = logging.StreamHandler()
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    logging.getLogger("rag").setLevel(logging.DEBUG if verbose else logging.NOTSET)


def _progress_bar(desc: str):
    """A tqdm bar fed by the knowledge base's (done, total, name) callbacks."""
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int, name: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit="doc", file=sys.stderr, leave=False)
        bar.n = done
        bar.set_postfix_str(Path(name).name[:30] if name else "")
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def _engine(settings: Settings, with_llm: bool = False, share_model: bool = False):
    from rag.compose import build_engine

    engine = build_engine(settings, share_model=share_model)
    if with_llm:
        engine.llm  # noqa: B018  (start or connect to the model now, not mid-answer)
    return engine


def _knowledge_base(settings: Settings, args: argparse.Namespace | None = None, **options):
    """The knowledge base; a writing command waits for another writer (saying so on stderr)
    unless `--no-wait` was given."""
    from rag.compose import build_knowledge_base

    wait = not getattr(args, "no_wait", False)
    return build_knowledge_base(
        settings,
        wait_for_writer=wait,
        on_wait=lambda message: print(message, file=sys.stderr),
        **options,
    )


def _shown(text: str) -> str:
    """A name as one line of a listing: control characters (a newline in a file name) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    paths = [Path(p) for p in args.paths] or [DEFAULT_DOCS]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"error: no such file or folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    kb = _knowledge_base(settings, args)
    report = kb.ingest(paths, sync=args.sync, progress=_progress_bar("ingesting"))
    for error in report.errors:
        print(f"skipped {_shown(error.message)}", file=sys.stderr)
    stats = kb.stats()
    print(
        f"added {len(report.added)}, updated {len(report.updated)}, unchanged "
        f"{len(report.unchanged)}, removed {len(report.removed)}, failed {len(report.errors)}; "
        f"index: {stats['documents']} documents, {stats['chunks']} chunks"
    )
    return 1 if report.errors else 0


def cmd_docs(args: argparse.Namespace, settings: Settings) -> int:
    documents = _knowledge_base(settings).documents()
    if args.json:
        print(json.dumps([d.__dict__ for d in documents], indent=2))
        return 0
    if not documents:
        print("No documents yet. Add some with: rag ingest PATH")
    for d in documents:
        print(f"{_shown(d.doc_id)}\t{d.chunks} chunks\t{d.published or '-'}\t{_shown(d.title)}")
    return 0


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    kb = _knowledge_base(settings, args)
    status = 0
    for doc_id in args.doc_ids:
        if kb.delete(doc_id):
            print(f"deleted {doc_id}")
        else:
            print(f"error: no document '{doc_id}' (see `rag docs`)", file=sys.stderr)
            status = 1
    return status


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    # Opened without the settings check: rebuilding is how a mismatch gets fixed.
    kb = _knowledge_base(settings, args, check_config=False)
    report = kb.reindex(progress=_progress_bar("reindexing"))
    print(f"reindexed {len(report.added)} documents into {report.chunks} chunks")
    return 0


def print_result(result: AnswerResult, streamed: str) -> None:
    """After the streamed text: the checked answer if checking changed it, then the sources."""
    if result.error:
        print(f"\nerror: {result.error}", file=sys.stderr)
        return
    if streamed:
        print()
    if result.answer != streamed.strip():
        print(("checked answer: " if streamed else "") + result.answer)
    for c in result.citations:
        date = f", {c.published}" if c.published else ""
        where = c.location(Path(c.doc_id).name) if c.page or c.section else c.doc_id
        print(f"  [{c.n}] {c.title}{date} ({where})\n      “{c.span.strip()}”")


def stream_answer(engine, question: str, history: list[Turn], echo: bool) -> AnswerResult:
    """Run one turn, printing tokens as they come when `echo`; returns the final result."""
    streamed = ""
    for event in engine.answer(question, history):
        if isinstance(event, Final):
            if echo:
                print_result(event.result, streamed)
            return event.result
        if not echo:
            continue
        if isinstance(event, Token):
            print(event.text, end="", flush=True)
            streamed += event.text
        elif isinstance(event, Searching) and event.question_used != question:
            print(f"(searched for: {event.question_used})", file=sys.stderr)
    raise AssertionError("answer() ended without a Final event")


def _served(args: argparse.Namespace, settings: Settings):
    """A `rag serve` on this machine with the same store and settings (it has everything
    warm), unless `--no-server`."""
    from rag.server.client import ServedEngine

    return ServedEngine.find(settings) if args.server else None


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    served = _served(args, settings)
    if served is not None:
        return ask_all(served, args)

    from rag.llm.local import ModelProcess

    local = settings.uses_local_llm
    # With no model server to share, the model loads in a child process while this one loads
    # the rest (one Python process cannot do both at once: loading the model holds the GIL).
    child = ModelProcess.start(settings) if local else None
    try:
        from rag.compose import build_engine, build_llm

        def connect_llm():
            # the child's model once it serves; if it could not, one here (which says why not)
            return (child and child.llm(settings)) or build_llm(settings)

        engine = build_engine(settings, connect_llm=connect_llm if child else None)
        if local and engine.kb.stats()["documents"]:
            # A model started for this command restores the saved prompt prefixes (a shared
            # server keeps its own warm); with nothing to search the model is never needed.
            engine.warm_up(follow_ups=len(args.questions) > 1)
        return ask_all(engine, args)
    finally:
        if child is not None:
            child.stop()


def ask_all(engine, args: argparse.Namespace) -> int:
    """The questions of one `rag ask`, as one conversation; 1 if any failed."""
    history: list[Turn] = []
    status = 0
    for question in args.questions:
        result = stream_answer(engine, question, history, echo=not args.json)
        if args.json:
            print(json.dumps(result.to_json(), ensure_ascii=False), flush=True)
        status = status or (1 if result.error else 0)
        history.append(Turn(question, result.answer))
    return status


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    engine = _served(args, settings)
    if engine is None:
        engine = _engine(settings, with_llm=True)
        engine.warm_up()
    print("Ask about your documents (empty line or Ctrl-D to quit, /new for a new chat).")
    history: list[Turn] = []
    while True:
        try:
            question = input("\n> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question:
            return 0
        if question == "/new":
            history = []
            continue
        result = stream_answer(engine, question, history, echo=True)
        history.append(Turn(question, result.answer))


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from rag.security import page_auth
    from rag.web import serve

    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v}
    settings = settings.model_copy(update=overrides)
    try:
        page_auth(settings)  # refuse an unsafe address before loading anything
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    engine = _engine(settings, with_llm=True, share_model=True)
    if args.ingest_if_empty and engine.kb.stats()["documents"] == 0 and DEFAULT_DOCS.is_dir():
        # a bar only on a terminal: in a server's log it is noise
        bar = _progress_bar("ingesting seeds") if sys.stderr.isatty() else None
        report = engine.kb.ingest([DEFAULT_DOCS], progress=bar)
        print(f"ingested {len(report.added)} documents from {DEFAULT_DOCS}/")
    if settings.uses_local_llm:
        engine.warm_up(follow_ups=False)  # the first question then pays no start-up cost
        # The condense prompt (follow-ups) and the reranker load while the page is already up.
        threading.Thread(target=engine.warm_up_rest, daemon=True).start()
    else:
        # A remote endpoint may be slow or down: the page comes up at once and says so.
        if not engine.llm_reachable():
            print(f"warning: {engine.llm_problem}", file=sys.stderr)
        threading.Thread(target=engine.warm_up, daemon=True).start()
    serve(engine, settings)
    return 0


def cmd_llm_server(args: argparse.Namespace, settings: Settings) -> int:
    """A long-lived local model server that `rag ask`, `rag chat` and the page all share."""
    from rag.answer import cache_prompt_prefixes
    from rag.llm.local import local_llm, start_local_server

    if args.port is not None:
        settings = settings.model_copy(update={"local_llm_port": args.port})
    server = start_local_server(settings)
    cache_prompt_prefixes(local_llm(settings, server.base_url))  # restored from disk if saved
    print(f"serving {server.model_name} at {server.base_url} (Ctrl-C to stop)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    return 0


def cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    """Assemble and verify the shipped models now rather than on the first question, and save
    the LLM's prompt-prefix caches, which every later start restores instead of recomputing."""
    from rag.answer import cache_prompt_prefixes
    from rag.compose import build_llm
    from rag.llm.local import local_gguf, prefix_cache_dir
    from rag.models import minilm_dynamic_onnx_path

    if not settings.embed_base_url:
        print(f"embedder ready: {minilm_dynamic_onnx_path(settings.models_dir)}")
    gguf = local_gguf(settings)
    print(f"model ready: {gguf}")
    if settings.uses_local_llm:
        llm = build_llm(settings)
        cache_prompt_prefixes(llm)
        if getattr(llm, "shared", False):
            print(f"prompt prefixes: kept by the model server running at {llm.base_url}")
        else:
            print(f"prompt prefixes cached in {prefix_cache_dir(settings)}")
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from rag_eval.cli import main as eval_main
    except ImportError as exc:
        print(f"error: the evaluation suite is not installed ({exc})", file=sys.stderr)
        return 2
    return eval_main(args, settings)


def _exit_now(status: int) -> None:
    """End a one-shot `rag ask` run as a program as soon as its answer is out: tearing down
    the model server, Chroma and every loaded library takes about a second more and achieves
    nothing for a process that wrote nothing but its output."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(status)


def _add_server_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="let a `rag serve` running on this machine (RAG_PORT) answer, when it searches "
        "the same documents with the same settings (default: yes)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="add or update documents (default: seeds/)")
    p.add_argument("paths", nargs="*", help="files or folders")
    p.add_argument("--sync", action="store_true", help="also remove documents whose files are gone")
    p.add_argument("--no-wait", action="store_true", help=NO_WAIT_HELP)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("docs", help="list documents")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("delete", help="remove documents by id (see `rag docs`)")
    p.add_argument("doc_ids", nargs="+")
    p.add_argument("--no-wait", action="store_true", help=NO_WAIT_HELP)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("reindex", help="rebuild chunks and embeddings with the current settings")
    p.add_argument("--no-wait", action="store_true", help=NO_WAIT_HELP)
    p.set_defaults(func=cmd_reindex)

    p = sub.add_parser("ask", help="answer questions; successive ones are one conversation")
    p.add_argument("questions", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per turn")
    _add_server_flag(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="interactive chat in the terminal")
    _add_server_flag(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("serve", help="serve the chat page")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--ingest-if-empty", action="store_true", help="ingest seeds/ first if empty")
    p.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("llm-server", help="run the shipped model as a shared local server")
    p.add_argument("--port", type=int, help="default: RAG_LOCAL_LLM_PORT")
    p.set_defaults(func=cmd_llm_server)

    p = sub.add_parser("setup", help="assemble and verify the shipped model")
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser("eval", help="measure retrieval, answers, refusals and citations")
    p.add_argument("--corpus", type=Path, help="corpus JSONL (default: the seed golden set)")
    p.add_argument(
        "--docs", type=Path, help="a folder of documents, read as `rag ingest` reads them"
    )
    p.add_argument("--questions", type=Path, help="questions JSONL (with --corpus or --docs)")
    p.add_argument("--retrieval-only", action="store_true", help="no LLM: retrieval metrics only")
    p.add_argument("--limit", type=int, help="only the first N questions")
    p.add_argument("--sample", type=int, metavar="N", help="fixed sample, stratified by type")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    p.add_argument("--out", type=Path, default=Path("evals/reports"), help="report folder")
    p.add_argument("--name", help="report file name (default: from dataset and options)")
    p.add_argument("--gate", type=Path, metavar="FILE", help="thresholds; exit 1 if any fails")
    p.add_argument(
        "--evidence-removed",
        action="store_true",
        help="ask the answerable questions with the passages holding their answers taken away "
        "(each should now be refused)",
    )
    p.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run llama-index's CitationQueryEngine on the same data (default: yes)",
    )
    p.add_argument(
        "--judge",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="judge citation support with an LLM (default: yes)",
    )
    p.add_argument(
        "--history",
        type=Path,
        default=Path("evals/history.jsonl"),
        help="append the summary here (default: evals/history.jsonl)",
    )
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    from pydantic import ValidationError

    from rag.security import install_log_redaction, redact

    install_log_redaction(None)

    settings = None
    try:
        settings = get_settings()
        install_log_redaction(settings)
        status = args.func(args, settings)
        if argv is None and args.command == "ask":
            _exit_now(status)
        return status
    except ValidationError as exc:
        print(f"error: invalid setting: {redact(str(exc), settings)}", file=sys.stderr)
    except _user_errors() as exc:
        print(f"error: {redact(str(exc), settings)}", file=sys.stderr)
    return 2


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors that are the user's to fix, reported in one line without a traceback. Imported
    only when something went wrong: the knowledge base's module loads Chroma, which `rag ask`
    must not wait for before it starts the model."""
    from rag.knowledge_base import IndexMismatchError
    from rag.knowledge_base.lock import WriterBusyError
    from rag.llm import LLMError
    from rag.models import ModelError

    return IndexMismatchError, ModelError, LLMError, WriterBusyError


if __name__ == "__main__":
    sys.exit(main())
