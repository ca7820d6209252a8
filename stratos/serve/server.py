"""Run the app under uvicorn: bind, announce, serve, drain on SIGTERM/SIGINT.

Graceful shutdown is uvicorn's: on SIGTERM or SIGINT it stops accepting connections, lets requests in
flight (streams included) finish for up to `graceful_timeout_s`, then exits 0. Tests check it with a
real subprocess (tests/serve/test_server.py).

    serve(load_engine("export/onnx"), ServeSettings(port=8000))          # blocks (the CLI)
    with running(engine, settings) as url: ...                           # a thread (tests, benchmarks)
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
import time
from typing import Iterator

try:
    import uvicorn
except ImportError as e:  # the serving stack is an extra: say how to get it instead of a traceback
    from stratos.errors import UserError

    raise UserError(f"serving needs the 'serve' extra ({e.name} is missing): pip install 'stratos[serve]'") from None

from stratos.serve.app import create_app
from stratos.serve.engine import Engine
from stratos.serve.settings import ServeSettings


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 => a free port). Bound before the server starts, so the port is known."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        from stratos.errors import UserError

        raise UserError(f"cannot bind {host}:{port}: {e.strerror} (choose another port, or 0 for any free port)")
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class DrainingServer(uvicorn.Server):
    """uvicorn's server, except that a drained shutdown ends the process normally (exit 0).

    uvicorn re-raises SIGTERM/SIGINT once its graceful shutdown is done, so the process would die
    "by signal 15" even though the stop was requested and every request finished. A second SIGINT
    still forces an immediate exit, as in uvicorn.
    """

    def handle_exit(self, sig: int, frame) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
            return
        if not self.should_exit:
            print(f"stratos.serve: {signal.Signals(sig).name}: draining in-flight requests "
                  f"(up to {self.config.timeout_graceful_shutdown:g} s)", file=sys.stderr, flush=True)
        self.should_exit = True


def make_server(engine: Engine, settings: ServeSettings) -> uvicorn.Server:
    app = create_app(engine, settings)
    config = uvicorn.Config(app, log_level=settings.log_level, timeout_graceful_shutdown=settings.graceful_timeout_s,
                            access_log=False, lifespan="on", timeout_keep_alive=5)
    return DrainingServer(config)


def serve(engine: Engine, settings: ServeSettings) -> None:
    """Serve until SIGTERM/SIGINT (then drain); prints one 'listening on' line when ready."""
    settings.validate()
    sock = bind(settings.host, settings.port)
    server = make_server(engine, settings)
    host, port = sock.getsockname()[:2]
    if settings.host not in ("127.0.0.1", "::1", "localhost"):
        print(f"stratos.serve: warning: listening on {settings.host}, reachable beyond this machine"
              + ("" if settings.api_key else " WITHOUT an API key"), file=sys.stderr, flush=True)

    def announce() -> None:  # printed once uvicorn has started, so a reader can connect right away
        while not server.started and not server.should_exit:
            time.sleep(0.02)
        if server.started:
            print(f"stratos.serve: listening on http://{host}:{port}/v1 (model {engine.name}, backend "
                  f"{engine.backend}, auth {'on' if settings.api_key else 'off'})", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[sock])
    print("stratos.serve: stopped", file=sys.stderr, flush=True)


@contextlib.contextmanager
def running(engine: Engine, settings: ServeSettings) -> Iterator[str]:
    """Serve in a background thread; yields the base URL ("http://127.0.0.1:PORT/v1"); stops on exit."""
    settings.validate()
    sock = bind(settings.host, settings.port)
    server = make_server(engine, settings)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise RuntimeError("server failed to start")
        time.sleep(0.01)
    host, port = sock.getsockname()[:2]
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=settings.graceful_timeout_s + 5)
        sock.close()
