"""A model endpoint that accepts connections and never answers: how long until the user sees
an error (the question through `Engine.answer()`), and until `rag serve` is up, with the
default settings (connect 5 s, first token 30 s).

    .venv/bin/python benchmarks/hung_endpoint.py [--out benchmarks/results]

The seed article is ingested into a temporary data dir first. Writes hung-endpoint.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import rag  # noqa: E402,F401  (offline environment first)
from rag.compose import build_engine  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.events import Final  # noqa: E402
from rag_eval.provenance import run_line  # noqa: E402
from rag_eval.report import render_markdown  # noqa: E402

SEED = REPO / "seeds" / "000_cff91d0424af9357.txt"


def hung_server(release: threading.Event) -> ThreadingHTTPServer:
    class Hung(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            release.wait(timeout=900)

        do_GET = do_POST

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hung)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="rag-hung-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env.update(RAG_DATA_DIR=str(data), RAG_CONFIG=str(data / "none.toml"))
    rag_bin = str(Path(sys.executable).parent / "rag")
    subprocess.run([rag_bin, "ingest", str(SEED)], env=env, check=True, capture_output=True)

    release = threading.Event()
    server = hung_server(release)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    settings = Settings(data_dir=data, llm_base_url=url, llm_model="model", _env_file=None)
    engine = build_engine(settings)
    engine.kb.stats()  # the knowledge base is open before the clock starts
    started = time.monotonic()
    final = next(e for e in engine.answer("Who led Russia's delegation?") if isinstance(e, Final))
    to_error = time.monotonic() - started

    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    started = time.monotonic()
    serve = subprocess.Popen(
        [rag_bin, "serve", "--port", str(free)],
        env={**env, "RAG_LLM_BASE_URL": url, "RAG_LLM_MODEL": "model"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    up = None
    while time.monotonic() - started < 300 and serve.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", free)) == 0:
                up = time.monotonic() - started
                break
        time.sleep(0.1)
    serve.terminate()
    _, err = serve.communicate(timeout=30)
    release.set()
    server.shutdown()
    warning = next((line for line in err.splitlines() if "not answering" in line), "(none)")

    blocks = [
        ("h1", "A hung model endpoint"),
        (
            "p",
            run_line()
            + " The endpoint accepts every connection and never replies; default settings "
            "(llm_connect_timeout 5 s, llm_first_token_timeout 30 s).",
        ),
        (
            "table",
            ["measure", "value"],
            [
                ["question → error shown (s)", f"{to_error:.1f}"],
                ["the error", final.result.error or "(none)"],
                ["`rag serve` → page accepting connections (s)", f"{up:.1f}" if up else "never"],
                ["`rag serve` warning", warning],
            ],
        ),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hung-endpoint.md").write_text(render_markdown(blocks), encoding="utf-8")
    print(render_markdown(blocks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
