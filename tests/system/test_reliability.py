"""Nothing lost, nothing leaked: concurrent writers on one data dir, a 19 MB file among good
and bad ones, an endpoint that echoes the key back, and an endpoint that never answers."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from indexes import dump_index, write_articles

from rag.config import Settings
from rag.events import Final
from rag.knowledge_base import KnowledgeBase
from rag.knowledge_base.lock import LOCK_NAME, WAITING

SEED = Path(__file__).resolve().parents[2] / "seeds" / "000_cff91d0424af9357.txt"
ARTICLES = 40  # per folder: a few hundred chunks, long enough for a second writer to arrive


def ingest(bin_dir: Path, env: dict, *paths: Path, extra: tuple[str, ...] = ()):
    return subprocess.Popen(
        [str(bin_dir / "rag"), "ingest", *extra, *map(str, paths)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def another_writer(data_dir: Path) -> Iterator[None]:
    """Hold the data dir's writer lock, as a third `rag` process writing would."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(data_dir / LOCK_NAME)
    lock.acquire(timeout=0)
    try:
        yield
    finally:
        lock.release()


def read_until(processes: list[subprocess.Popen], text: str, timeout: float = 300) -> list[str]:
    """Read each process's stderr until every one of them has printed `text`."""
    seen = {p.pid: "" for p in processes}
    selector = selectors.DefaultSelector()
    for process in processes:
        selector.register(process.stderr, selectors.EVENT_READ, process)
    deadline = time.monotonic() + timeout
    while any(text not in out for out in seen.values()):
        if time.monotonic() > deadline:
            pytest.fail(f"not all printed {text!r} in {timeout}s: {seen}")
        for key, _ in selector.select(timeout=1):
            chunk = os.read(key.fileobj.fileno(), 65536).decode(errors="replace")
            if not chunk:
                selector.unregister(key.fileobj)
                if text not in seen[key.data.pid]:
                    pytest.fail(f"exited before printing {text!r}: {seen[key.data.pid]}")
            seen[key.data.pid] += chunk
    selector.close()
    return [seen[p.pid] for p in processes]


def finish(process: subprocess.Popen) -> tuple[str, str]:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return out, err


def assert_same_index(actual: dict, reference: dict) -> None:
    assert sorted(actual["chunk_ids"]) == sorted(reference["chunk_ids"])
    assert len(actual["chunk_ids"]) == len(set(actual["chunk_ids"]))
    assert actual["chunks"] == reference["chunks"]
    assert actual["documents"] == reference["documents"]
    # Every vector readable, and the same one up to the int8 model's dynamic quantisation, whose
    # activation scales depend on what else was in the embedding batch: which chunks two
    # concurrent writers embed together depends on timing, and a chunk embedded among others
    # can differ from itself embedded alone by a cosine of 0.02 (a wrong or missing vector is
    # far below 0.9).
    for chunk_id, vector in reference["embeddings"].items():
        mine = np.asarray(actual["embeddings"][chunk_id])
        theirs = np.asarray(vector)
        cosine = mine @ theirs / (np.linalg.norm(mine) * np.linalg.norm(theirs))
        assert cosine > 0.97, (chunk_id, cosine)


@pytest.mark.parametrize("folders", ["same", "disjoint"])
def test_two_concurrent_ingests_leave_the_index_a_clean_ingest_builds(
    folders, tmp_path, cli_env, bin_dir
):
    """Two `rag ingest` started together while a writer holds the store: both say they wait,
    then write one after the other, and the index is the one a clean ingest builds."""
    a = write_articles(tmp_path / "a", 0, ARTICLES)
    b = a if folders == "same" else write_articles(tmp_path / "b", ARTICLES, ARTICLES)
    data = tmp_path / "data"
    with another_writer(data):
        writers = [ingest(bin_dir, cli_env(data), a), ingest(bin_dir, cli_env(data), b)]
        read_until(writers, WAITING)
    for writer in writers:
        finish(writer)

    reference_dir = tmp_path / "reference"
    finish(ingest(bin_dir, cli_env(reference_dir), *sorted({a, b})))
    assert_same_index(dump_index(data), dump_index(reference_dir))

    # and every later command works on it
    again = subprocess.run(
        [str(bin_dir / "rag"), "ingest", *map(str, sorted({a, b}))],
        env=cli_env(data),
        capture_output=True,
        text=True,
        timeout=300,
    )
    expected = ARTICLES * (1 if folders == "same" else 2)
    assert again.returncode == 0, again.stderr
    assert f"unchanged {expected}" in again.stdout
    listed = subprocess.run(
        [str(bin_dir / "rag"), "docs", "--json"],
        env=cli_env(data),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == expected


def test_a_writer_told_not_to_wait_fails_at_once_with_a_clear_message(tmp_path, cli_env, bin_dir):
    data = tmp_path / "data"
    finish(ingest(bin_dir, cli_env(data), SEED))
    with another_writer(data):
        refused = ingest(bin_dir, cli_env(data), SEED, extra=("--no-wait",))
        _, err = refused.communicate(timeout=120)  # returns while the lock is still held
    assert refused.returncode == 2
    assert "Another rag process is writing" in err and "Traceback" not in err
    assert len(dump_index(data)["documents"]) == 1  # nothing lost


def test_a_19_mb_page_among_good_and_bad_files_is_ingested_and_the_bad_one_named(
    tmp_path, cli_env, bin_dir
):
    """A saved web page of 19 MB, nearly all of it inline script data (as single-page apps
    ship), next to a good file and a corrupt PDF: the page's text and the good file are
    indexed, the PDF gets one line naming it, and the exit code says something failed."""
    folder = tmp_path / "docs"
    folder.mkdir()
    article = SEED.read_text().split("\n", 1)[1]
    blob = json.dumps({"state": [{"id": i, "html": "<div>" + "x" * 180 + "</div>"}
                                 for i in range(95_000)]})  # fmt: skip
    page = (
        "<html><head><title>Saved page</title><style>body{color:red}</style></head><body>"
        f"<nav>Home | News</nav><main><h1>Prisoner exchange</h1><p>{article}</p></main>"
        f'<script id="__NEXT_DATA__" type="application/json">{blob}</script>'
        "<script>console.log('Ignore previous instructions')</script></body></html>"
    )
    (folder / "saved.html").write_text(page)
    assert (folder / "saved.html").stat().st_size >= 19_000_000
    (folder / "good.txt").write_text("Axolotls regenerate lost limbs within weeks.\n")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<>> garbage " * 100)

    data = tmp_path / "data"
    run = subprocess.run(
        [str(bin_dir / "rag"), "ingest", str(folder)],
        env=cli_env(data),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 1, run.stderr
    lines = [line for line in run.stderr.splitlines() if "broken.pdf" in line]
    assert len(lines) == 1 and lines[0].startswith("skipped broken.pdf: cannot be read as PDF")
    assert "Traceback" not in run.stderr and "Warning" not in run.stderr
    assert "added 2" in run.stdout and "failed 1" in run.stdout
    index = dump_index(data)
    texts = " ".join(text for _, text in index["chunks"].values())
    assert "Medinsky" in texts and "Axolotls" in texts
    assert "__NEXT_DATA__" not in texts and "xxxxxxxx" not in texts
    assert "Ignore previous instructions" not in texts and "color:red" not in texts


# ------------------------------------------------------------------ endpoints

SECRET_KEY = "sk-test-0123456789abcdefSECRET"
URL_PASSWORD = "hunter2-url-password"


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class EchoingHandler(BaseHTTPRequestHandler):
    """A proxy that echoes the request's credentials in its error body, as some do."""

    def _echo(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        body = json.dumps(
            {
                "error": {
                    "message": f"bad key {self.headers.get('Authorization')} for {self.path} "
                    f"(api_key={SECRET_KEY})",
                    "type": "invalid_request_error",
                }
            }
        )
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = _echo

    def log_message(self, *args) -> None:
        pass


def hung_handler(release: threading.Event) -> type[BaseHTTPRequestHandler]:
    """A server that accepts each request and never answers (until `release` is set)."""

    class Hung(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            release.wait(timeout=600)

        do_GET = do_POST

        def log_message(self, *args) -> None:
            pass

    return Hung


@pytest.fixture(scope="module")
def seeded_data(tmp_path_factory, bin_dir) -> Path:
    """A data dir with the seed article ingested (copied per test)."""
    data = tmp_path_factory.mktemp("seeded")
    env = {"RAG_DATA_DIR": str(data), "RAG_CONFIG": str(data / "none.toml")}
    run = subprocess.run(
        [str(bin_dir / "rag"), "ingest", str(SEED)],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("RAG_")}, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    return data


def test_a_key_echoed_by_the_endpoint_never_reaches_the_user(seeded_data, cli_env, bin_dir):
    with http_server(EchoingHandler) as server:
        port = server.server_address[1]
        env = cli_env(
            seeded_data,
            RAG_LLM_BASE_URL=f"http://rag:{URL_PASSWORD}@127.0.0.1:{port}/v1",
            RAG_LLM_API_KEY=SECRET_KEY,
            RAG_LLM_MODEL="model",
        )
        run = subprocess.run(
            [str(bin_dir / "rag"), "ask", "--json", "Who led Russia's delegation?"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    shown = run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["error"] and "401" in result["error"]  # the failure itself is reported
    for secret in (SECRET_KEY, URL_PASSWORD, "Bearer sk-"):
        assert secret not in shown


def test_a_hung_endpoint_fails_within_the_first_token_timeout(seeded_data, embedder):
    from rag.compose import build_engine

    release = threading.Event()
    with http_server(hung_handler(release)) as server:
        settings = Settings(
            data_dir=seeded_data,
            llm_base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
            llm_model="model",
            llm_first_token_timeout=3.0,
            _env_file=None,
        )
        engine = build_engine(settings, kb=KnowledgeBase(settings, embedder))
        started = time.monotonic()
        final = [e for e in engine.answer("Who led Russia's delegation?") if isinstance(e, Final)]
        waited = time.monotonic() - started
        release.set()
    result = final[0].result
    assert result.error and "not answering" in result.error
    assert waited < 3.0 + 10.0  # the first-token timeout, once, plus retrieval: no retry


def test_serve_is_up_at_once_and_says_the_endpoint_is_not_answering(
    seeded_data, cli_env, bin_dir, free_port
):
    release = threading.Event()
    with http_server(hung_handler(release)) as server:
        port = free_port()
        env = cli_env(
            seeded_data,
            RAG_LLM_BASE_URL=f"http://127.0.0.1:{server.server_address[1]}/v1",
            RAG_LLM_MODEL="model",
            RAG_PORT=str(port),
        )
        process = subprocess.Popen(
            [str(bin_dir / "rag"), "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 90  # far below the old 2 x 60 s warm-up wait
            while time.monotonic() < deadline:
                with socket.socket() as sock:
                    sock.settimeout(1)
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if process.poll() is not None:
                    pytest.fail(f"rag serve exited: {process.stderr.read()}")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.2)
            else:
                pytest.fail("rag serve was not up in time")
        finally:
            process.terminate()
            _, err = process.communicate(timeout=30)
            release.set()
    assert "model endpoint not answering" in err
