"""`rag` commands run as subprocesses by measurements and system tests: their output read by a
thread, line by line with its time, so a caller can wait for a line with a deadline."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path


class Watched:
    """A subprocess whose stdout and stderr lines are collected as (ms since start, line)."""

    def __init__(self, args: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        self.started = time.perf_counter()
        self.popen = subprocess.Popen(
            list(args),
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self.lines: list[tuple[float, str]] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str] | None:
        """The first line from now on that matches, or None when the process ends or the
        deadline passes first."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                self._queue.put(None)  # later calls see the end too
                return None
            self.lines.append(((time.perf_counter() - self.started) * 1000, line.rstrip()))
            if match := re.search(pattern, line):
                return match
        return None

    def output(self, last: int = 30) -> str:
        return "\n".join(line for _, line in self.lines[-last:])

    def stop(self) -> int:
        self.popen.terminate()
        try:
            return self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()
