"""Serve an ASGI app (a sandbox, or the hub itself) on a loopback port from a background thread.

Used by tests and the demo to stand up local stand-ins for SaaS APIs::

    with SandboxServer(create_stripe_sandbox()) as server:
        client = httpx.AsyncClient(base_url=server.base_url)

The port is picked by the operating system (``port=0``) unless given, and is known as soon as
:meth:`SandboxServer.start` returns, because the socket is bound before uvicorn starts.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

__all__ = ["SandboxServer", "SandboxServerError"]


class SandboxServerError(RuntimeError):
    """The server did not start or stop in time."""


class SandboxServer:
    """One uvicorn server for ``app`` on ``host``:``port`` in a daemon thread."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 10.0,
        log_level: str = "warning",
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self.startup_timeout = startup_timeout
        self.log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port: int = port

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._server is None:
            raise SandboxServerError("the server is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> SandboxServer:
        """Bind the port, start serving and return once requests are accepted."""
        if self.running:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError as error:
            sock.close()
            raise SandboxServerError(
                f"cannot bind {self.host}:{self._requested_port}: {error}; "
                "pick another port or use port=0"
            ) from error
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_level=self.log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"sandbox-{self.host}:{self.port}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not server.started:
            if not thread.is_alive():
                self._cleanup()
                raise SandboxServerError(f"the server on port {self.port} exited during startup")
            if time.monotonic() > deadline:
                self.stop()
                raise SandboxServerError(
                    f"the server on port {self.port} did not start within {self.startup_timeout} s"
                )
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to exit and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                if self._server is not None:
                    self._server.force_exit = True
                self._thread.join(timeout)
            if self._thread.is_alive():
                raise SandboxServerError(f"the server on port {self.port} did not stop in time")
        self._cleanup()

    def _cleanup(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._thread = None
        self._server = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
