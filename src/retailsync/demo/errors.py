"""Errors of the demo, each saying what went wrong and what to do."""

from __future__ import annotations


class DemoError(Exception):
    """The demo cannot run; the message says why and what to do."""


class PortInUse(DemoError):
    """The port asked for the hub is taken by another process."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            f"port {port} on {host} is already in use (another `retailsync demo` or `serve`?). "
            f"Stop that process, or pick another port: retailsync demo --port <free port>"
        )
        self.host = host
        self.port = port
