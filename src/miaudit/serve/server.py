"""Running the app with uvicorn: in the foreground (``miaudit serve``) or in a background thread
(tests and benchmarks), always on a socket bound before the server starts."""
from __future__ import annotations

import ipaddress
import logging
import socket
import sys
import threading
import time

from miaudit.errors import InputError
from miaudit.extras import require


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: an ephemeral one); InputError when it cannot be had."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, backlog=256)
    except OSError as err:
        raise InputError(f"--port: cannot listen on {host}:{port} ({err.strerror or err})") from None


def is_loopback(host: str) -> bool:
    """True when host is a loopback address or a name that resolves only to loopback addresses."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def url_of(sock: socket.socket) -> str:
    """http://HOST:PORT/v1 for a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"


def _uvicorn_server(app, sock: socket.socket, log_level: str):
    uvicorn = require("uvicorn", "serve", field="miaudit serve")
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=5, server_header=False)
    return uvicorn.Server(config)


def configure_logging(level: int = logging.INFO) -> None:
    """Request lines of the "miaudit.serve" logger to stderr, one a line with a UTC timestamp."""
    logger = logging.getLogger("miaudit.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def run(app, sock: socket.socket, log_level: str = "info") -> None:
    """Serve ``app`` on the bound ``sock`` until interrupted (Ctrl-C / SIGTERM)."""
    _uvicorn_server(app, sock, log_level).run(sockets=[sock])


class BackgroundServer:
    """``app`` served by uvicorn in a daemon thread on host:port (port 0: ephemeral), as a context
    manager: ``with BackgroundServer(app) as server: httpx.get(server.url + "/health")``."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        self.app, self.host, self.port, self.log_level = app, host, port, log_level
        self.url: str | None = None
        self._server = self._thread = None

    def start(self, timeout: float = 20.0) -> BackgroundServer:
        sock = bind(self.host, self.port)
        self.url, self.port = url_of(sock), sock.getsockname()[1]
        self._server = _uvicorn_server(self.app, sock, self.log_level)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name=f"uvicorn:{self.port}")
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for its thread (at most ``timeout`` seconds)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
