"""Ports for the servers a measurement starts itself."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port free on localhost now: a server of our own, never one someone else runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
