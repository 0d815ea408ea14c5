"""The shipped model: its GGUF served by xllamacpp's OpenAI-compatible server on 127.0.0.1, in
this process or in a shared `rag llm-server`, with prompt prefixes kept on disk."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import httpx

from rag.config import Settings
from rag.llm.base import LLMError, Message
from rag.llm.openai_compatible import Endpoint, OpenAICompatibleLLM
from rag.models import qwen_gguf_path

log = logging.getLogger(__name__)

SLOTS = 2  # server slots of the local model: the answer and the condense prompt prefixes
KEPT_PREFIXES = 4  # saved prefix caches kept (~20 MB each for the shipped model)
# Weights are used as stored, not repacked for the CPU's wider kernels at load: repacking
# nearly doubles the load a one-shot command pays on every run, and buys faster writing but
# slower reading of the prompt, which about cancel for an answer's few hundred new prompt
# tokens and short reply (benchmarks/results/model-load.md). Part of a saved prefix's key,
# since the kernels that computed a KV cache differ with it.
NO_WEIGHT_REPACK = True


class LocalLLM(OpenAICompatibleLLM):
    """The shipped model's llama.cpp server (in this process or a shared `rag llm-server`).

    `prime` puts a fixed prompt prefix in a server slot's KV cache. The cache is saved to a file
    the first time and restored from it on later starts: restoring takes milliseconds where
    reading the prefix again takes seconds on a small CPU.

    On a `shared` server (another process's: `rag serve`, `rag llm-server`) priming does
    nothing: its owner keeps the prefixes warm, and restoring into a slot that is answering
    someone else fails and would make this process recompute the prefix there."""

    def __init__(
        self, endpoint: Endpoint, gguf: Path, settings: Settings, shared: bool = False
    ) -> None:
        super().__init__(endpoint)
        self.shared = shared
        self._root = endpoint.base_url.rstrip("/").removesuffix("/v1")
        stat = gguf.stat() if gguf.is_file() else None
        self._tag = [
            gguf.name,
            stat.st_size if stat else 0,
            settings.local_llm_ctx,
            *(["no-repack"] if NO_WEIGHT_REPACK else []),
        ]
        self._cache_dir = prefix_cache_dir(settings)
        self._next_slot = 0

    def prime(self, messages: Sequence[Message]) -> None:
        """Restore this prefix's saved KV cache into the next slot, or compute and save it."""
        if self.shared:
            return
        key = hashlib.sha256(json.dumps([self._tag, list(messages)]).encode()).hexdigest()
        filename = f"prefix-{key[:24]}.bin"
        slot, self._next_slot = self._next_slot, (self._next_slot + 1) % SLOTS
        if self._slot_action(slot, "restore", filename):
            return
        try:
            reply = httpx.post(
                f"{self._root}/v1/chat/completions",
                json={"messages": list(messages), "max_tokens": 1, "id_slot": slot},
                timeout=self.endpoint.timeout,
            )
            reply.raise_for_status()
        except httpx.HTTPError as exc:
            raise LLMError(f"Cannot reach the LLM at {self.base_url}: {exc}") from exc
        if self._slot_action(slot, "save", filename):
            self._prune()

    def _prune(self) -> None:
        """Keep the newest saved prefixes only (older ones belong to edited prompts)."""
        saved = sorted(
            self._cache_dir.glob("prefix-*.bin"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for old in saved[KEPT_PREFIXES:]:
            old.unlink(missing_ok=True)

    def _slot_action(self, slot: int, action: str, filename: str) -> bool:
        """llama.cpp's /slots API; False when it cannot (no such file, no save path, busy)."""
        try:
            reply = httpx.post(
                f"{self._root}/slots/{slot}",
                params={"action": action},
                json={"filename": filename},
                timeout=self.endpoint.timeout,
            )
        except httpx.HTTPError:
            return False
        if reply.status_code != 200:
            log.debug("slot %s %s %s: HTTP %s", slot, action, filename, reply.status_code)
        return reply.status_code == 200


def prefix_cache_dir(settings: Settings) -> Path:
    """Saved prompt-prefix KV caches (named by a hash of model and prompt) in the data dir."""
    return settings.models_dir / "prefix-cache"


class LocalModelServer:
    """A GGUF served in this process by xllamacpp's OpenAI-compatible server on 127.0.0.1."""

    def __init__(
        self, gguf: Path, port: int, threads: int, n_ctx: int, cache_dir: Path | None = None
    ) -> None:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.n_ctx = n_ctx
        # Two slots, each keeping its own fixed prompt prefix warm in its KV cache (answer and
        # condense prompts); the server routes a request to the slot sharing the longest prefix.
        params.n_parallel = SLOTS
        params.cache_prompt = True
        if cache_dir is not None:
            try:
                cache_dir.mkdir(parents=True, exist_ok=True)
                params.endpoint_slots = True
                params.slot_save_path = f"{cache_dir}/"  # llama.cpp appends the file name as is
            except OSError:  # prefixes are then computed on each start
                log.info("no prefix cache: cannot write %s", cache_dir)
        params.port = port
        params.verbosity = 0
        params.no_extra_bufts = NO_WEIGHT_REPACK
        params.warmup = False  # an empty warm-up decode: time at start, nothing cached by it
        threads = threads or model_threads()
        log.info("model %s on %d threads", gguf.name, threads)
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        self._server = xllamacpp.Server(params)
        address = self._server.listening_address.rstrip("/")
        if not address.startswith("http"):
            address = f"http://{address}"
        self.base_url = f"{address}/v1"
        self.model_name = gguf.stem


def _runnable_tasks() -> int | None:
    """Tasks running or ready to run on the machine now (/proc/stat), this one included."""
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("procs_running "):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def model_threads(samples: int = 5) -> int:
    """Threads for the model: the cores this process may use, less those other work keeps busy.
    llama.cpp's threads meet at a barrier after every step, so one thread that has to wait for
    a core stalls all of them: on a 2-core machine with one busy core, two threads answer many
    times slower than one. Busy cores are the fewest other runnable tasks over a few samples
    (a snapshot alone may catch a task that is about to sleep)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 2
    counts = []
    for i in range(samples):
        if (count := _runnable_tasks()) is not None:
            counts.append(count - 1)  # this process, reading
        if i + 1 < samples:
            time.sleep(0.01)
    busy = min(counts) if counts else 0
    return max(1, min(cores, cores - busy))


def probe(base_url: str, timeout: float = 0.5) -> bool:
    """True when an OpenAI-compatible server answers /models at base_url."""
    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/models", timeout=timeout) as reply:
            return bool(json.load(reply).get("data"))
    except (OSError, ValueError):
        return False


def answers(base_url: str, timeout: float) -> bool:
    """True when anything answers HTTP at base_url's model list (an error status included: an
    endpoint that wants a key still answers), False when it cannot be reached in time."""
    import urllib.error

    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/models", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


_local_servers: dict[Path, LocalModelServer] = {}


def local_gguf(settings: Settings) -> Path:
    return settings.local_llm_gguf or qwen_gguf_path(settings.models_dir)


def start_local_server(settings: Settings, port: int | None = None) -> LocalModelServer:
    """Start (once per process) the shipped model's server."""
    gguf = local_gguf(settings)
    if gguf not in _local_servers:
        log.info("starting local model %s", gguf.name)
        _local_servers[gguf] = LocalModelServer(
            gguf,
            port=settings.local_llm_port if port is None else port,
            threads=settings.local_llm_threads,
            n_ctx=settings.local_llm_ctx,
            cache_dir=prefix_cache_dir(settings),
        )
    return _local_servers[gguf]


def shared_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.local_llm_port}/v1"


class ModelProcess:
    """The shipped model's server in a child process (`python -m rag.llm.local PORT`) for one
    command: it loads while the command loads everything else, and ends with the command (it
    exits when its stdin closes, however the parent ended)."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self.popen = popen

    @classmethod
    def start(cls, settings: Settings) -> ModelProcess | None:
        """None when a shared server already answers (use that) or no child can start."""
        if probe(shared_url(settings)):
            return None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        # Threads are chosen here: the child would count this busy process as other work.
        threads = settings.local_llm_threads or model_threads()
        env = {**os.environ, "RAG_LOCAL_LLM_THREADS": str(threads)}
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", "rag.llm.local", str(port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                text=True,
            )
        except OSError as exc:
            log.info("no model process: %s", exc)
            return None
        return cls(popen)

    def llm(self, settings: Settings, timeout: float = 600.0) -> LocalLLM | None:
        """Its client once it serves; None when it ended or did not serve in time (the caller
        then starts the model in-process, which reports what is wrong)."""
        import select

        stdout = self.popen.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([stdout], [], [], left)
            if not ready:
                break
            line = stdout.readline()
            if not line:  # it ended
                break
            if match := re.search(r"serving \S+ at (http://\S+)", line):
                return local_llm(settings, match.group(1))
        self.stop()
        return None

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()


def connect_local_llm(settings: Settings, share: bool = False) -> LocalLLM:
    """A running shared local server (`rag llm-server`, or a `rag serve` that shares its own),
    else one started in this process: with `share`, on the shared port (a long-lived process
    such as `rag serve`, so that `rag ask` and others use its model instead of loading their
    own); else on a free port (a one-shot process, whose server ends with it)."""
    shared = shared_url(settings)
    if probe(shared):
        return local_llm(settings, shared, shared=True)
    return local_llm(settings, _own_server(settings, share).base_url)


def local_llm(settings: Settings, base_url: str, shared: bool = False) -> LocalLLM:
    """The client of the shipped model's server at base_url."""
    gguf = local_gguf(settings)
    endpoint = Endpoint(
        base_url,
        gguf.stem,
        None,
        timeout=settings.llm_timeout,
        max_retries=settings.llm_max_retries,
        connect_timeout=settings.llm_connect_timeout,
        first_token_timeout=settings.local_llm_first_token_timeout,
    )
    return LocalLLM(endpoint, gguf, settings, shared=shared)


def _own_server(settings: Settings, share: bool) -> LocalModelServer:
    if share:
        try:
            return start_local_server(settings)
        except Exception as exc:  # the port is taken by something else: serve unshared
            log.warning("cannot share the model on port %s: %s", settings.local_llm_port, exc)
    return start_local_server(settings, port=0)


def _serve_for_parent(port: int) -> None:
    """The child of `ModelProcess`: serve, say where, and end when the parent closes stdin. It
    imports only this module, so it starts loading the model at once."""
    from rag.config import get_settings

    settings = get_settings().model_copy(update={"local_llm_port": port})
    server = start_local_server(settings)
    print(f"serving {server.model_name} at {server.base_url}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    _serve_for_parent(int(sys.argv[1]))
