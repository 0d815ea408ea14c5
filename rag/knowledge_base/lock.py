"""One writer at a time on an embedded store.

Chroma's embedded `PersistentClient` assumes a single writing process: two processes writing one
data dir at once leave records whose embeddings can no longer be read. Every write to the
embedded store (ingest, delete, reindex, page uploads) therefore holds a lock file in the data
dir. A second writer waits, and says so, or with `wait=False` fails at once with a clear message.
Readers take no lock and keep answering. A Chroma server serialises writes itself, so with
`RAG_CHROMA_URL` the lock is not used.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

LOCK_NAME = "write.lock"
WAITING = "waiting for another ingest to finish…"


class WriterBusyError(RuntimeError):
    """Another process is writing to this knowledge base (and the caller chose not to wait)."""


class WriterLock:
    """A cross-process lock on a data dir's store, re-entrant within one process.

    `notify` is told once when a write has to wait for another process."""

    def __init__(
        self, data_dir: Path, wait: bool = True, notify: Callable[[str], None] | None = None
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / LOCK_NAME
        self.wait = wait
        self.notify = notify or (lambda message: log.warning("%s", message))
        # thread_local=False: the page's upload thread and the CLI share one lock object per
        # process; FileLock counts re-entries, so nested writes (ingest → add) do not deadlock.
        self._lock = FileLock(self.path, thread_local=False)
        self._threads = threading.RLock()  # threads of this process queue here first

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                if not self.wait:
                    raise WriterBusyError(
                        f"Another rag process is writing to {self.path.parent}; try again when "
                        "it has finished (or run without --no-wait to wait for it)."
                    ) from None
                self.notify(WAITING)
                self._lock.acquire()
            try:
                yield
            finally:
                self._lock.release()


class NoLock:
    """For a Chroma server: it serialises writes itself."""

    wait = True

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        yield
