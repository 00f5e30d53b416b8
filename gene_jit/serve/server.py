"""Running the server: the model, its scheduler and the Starlette app under uvicorn.

`serve` blocks until Ctrl-C (or SIGTERM): uvicorn then stops taking connections and
lets requests in flight finish for up to GRACE seconds; whatever is still running after
that is told the server is shutting down. `Server` runs the same thing in a background
thread, for tests and for Python programs that embed it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from gene_jit.llama.errors import LlamaError
from gene_jit.llama.model import Model
from gene_jit.llama.options import shown
from gene_jit.runtime.requirements import import_library
from gene_jit.serve.metrics import Metrics

GRACE = 5  # seconds requests in flight get to finish after Ctrl-C
ENGINES = ("libllama", "gene")
LOCALHOST = "127.0.0.1"


@dataclass
class Settings:
    model: Any = "default"  # a Model, or a name or path for model/create
    host: str = LOCALHOST
    port: int = 8080
    parallel: int = 4
    n_ctx: int = 2048  # tokens each slot holds (prompt and reply)
    api_key: str | None = None
    threads: int | None = None
    queue: int | None = None  # waiting requests beyond the slots (default 16 per slot)
    # libllama's repacked CPU weight layouts: its kernels for them take another path for
    # batches of 4+ rows that costs about as much per row as one token alone, which would
    # undo batching; the plain layout costs little more for 16 rows than for one
    repack: bool = False
    engine: str = "libllama"  # or "gene": gene-jit's own engine (gene_jit/engine) on the CPU

    def check(self) -> None:
        for name, lo, hi in (("port", 0, 65535), ("parallel", 1, 256), ("n_ctx", 16, 1 << 20)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise LlamaError(f"serve: {name.replace('_', '-')} must be an integer from {lo} to {hi}, got {shown(value)}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise LlamaError(f"serve: threads must be an integer >= 1, got {shown(self.threads)}")
        if self.queue is not None and (not isinstance(self.queue, int) or self.queue < 0):
            raise LlamaError(f"serve: queue must be an integer >= 0, got {shown(self.queue)}")
        if not isinstance(self.host, str) or not self.host:
            raise LlamaError(f"serve: host must be a host name or address, got {shown(self.host)}")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            raise LlamaError("serve: the API key must be a non-empty string")
        if self.engine not in ENGINES:
            raise LlamaError(f"serve: engine must be one of {', '.join(ENGINES)}, got {shown(self.engine)}")


def _uvicorn() -> Any:
    import_library("starlette", "gene-jit serve")
    return import_library("uvicorn", "gene-jit serve")


class Server:
    """The model, scheduler and app, and uvicorn serving them (`start` in a thread, or
    `run` in this one)."""

    def __init__(self, settings: Settings) -> None:
        settings.check()
        uvicorn = _uvicorn()
        from gene_jit.serve.app import Service, create_app
        from gene_jit.serve.scheduler import Scheduler

        self.settings = settings
        # libllama's CPU threads are an OpenMP team; by default its idle members spin at
        # every barrier, and beside the server's own threads on a busy machine a spinning
        # member holds the core its partner needs: a step then took ten times as long.
        # Read when libgomp loads, so this counts where the model is loaded here.
        # ggml's tiled K-quant matrix product (batches of 8+ rows) rounds a row
        # differently from the one-row kernel, so a request among 8 or more others would
        # not get what it gets alone; read once, at the first such product in the process
        # (the scheduler's exactness check below makes one). Both are taken back once
        # read, so that processes this one starts run as they would have.
        ours = {k: v for k, v in (("OMP_WAIT_POLICY", "passive"), ("GGML_CPU_TILED_MM", "0"))
                if k not in os.environ}
        os.environ.update(ours)
        self.model = _model(settings)
        train = self.model.n_ctx_train
        if 0 < train < settings.n_ctx:
            raise LlamaError(f"serve: n-ctx {settings.n_ctx} is larger than the {train} tokens "
                             f"{self.model.path.name} was trained on; pass at most {train}")
        self.metrics = Metrics()
        queue = settings.queue if settings.queue is not None else 16 * settings.parallel
        self.scheduler = Scheduler(self.model, settings.parallel, settings.n_ctx, queue, self.metrics)
        for key in ours:
            os.environ.pop(key, None)
        if not self.scheduler.exact:
            print("warning: serve: here a row decoded among others differs from the same row alone "
                  "(GGML_CPU_TILED_MM was on, or read before the server could turn it off), so a greedy "
                  "reply among other requests may differ from the same request alone; a fresh "
                  "`gene-jit serve` process does not", file=sys.stderr, flush=True)
        self.model_id = self.model.path.stem
        service = Service(self.model, self.scheduler, self.metrics, self.model_id, settings.api_key)
        self.app = create_app(service)
        self.sock = _bind(settings.host, settings.port)
        self.port = self.sock.getsockname()[1]
        # uvicorn cancels what is still running GRACE + 3 s after Ctrl-C; the scheduler
        # stops at GRACE, so that streams still open are told why they end before that
        config = uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=GRACE + 3,
                                lifespan="off", access_log=False)
        self.uvicorn = _uvicorn_server(uvicorn, config, self.scheduler.stop)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    def banner(self) -> str:
        s = self.settings
        slots = f"{s.parallel} slot{'' if s.parallel == 1 else 's'} of {self.scheduler.n_ctx} tokens"
        return (f"gene-jit serve: {self.model.path.name} at {self.url}/v1 "
                f"({slots}{', API key required' if s.api_key else ''}); Ctrl-C stops")

    def run(self) -> None:
        """Serve in this thread until Ctrl-C or SIGTERM, then shut down."""
        # uvicorn handles both signals, then raises the one it got again once it has shut
        # down; SIGTERM's own action would then end the process before it says it stopped
        main = threading.current_thread() is threading.main_thread()
        term = signal.signal(signal.SIGTERM, signal.default_int_handler) if main else None
        try:
            asyncio.run(self.uvicorn.serve(sockets=[self.sock]))
        except KeyboardInterrupt:  # uvicorn re-raises the signal it handled
            pass
        finally:
            if main:
                signal.signal(signal.SIGTERM, term)
            self.close()

    def start(self) -> Server:
        """Serve from a background thread; returns once the server takes requests."""
        self._thread = threading.Thread(target=self._serve_thread, name="gene-jit-serve-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self.uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise LlamaError("the server did not start")
            time.sleep(0.02)
        return self

    def _serve_thread(self) -> None:
        asyncio.run(self.uvicorn.serve(sockets=[self.sock]))

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join()
        self.close()

    def close(self) -> None:
        self.scheduler.stop()
        self.sock.close()


def _model(settings: Settings) -> Model:
    model = settings.model
    if isinstance(model, Model):
        return model
    if settings.engine == "gene":
        from gene_jit.engine.model import EngineModel

        return EngineModel(model, threads=settings.threads)
    return Model(model, threads=settings.threads, repack=settings.repack)


def _uvicorn_server(uvicorn: Any, config: Any, stop_scheduler: Any) -> Any:
    class GracefulServer(uvicorn.Server):  # type: ignore[misc, name-defined]
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            loop = asyncio.get_running_loop()
            timer = loop.call_later(GRACE, lambda: loop.run_in_executor(None, stop_scheduler))
            try:
                await super().shutdown(sockets)
            finally:
                timer.cancel()

    return GracefulServer(config)


def _bind(host: str, port: int) -> socket.socket:
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise LlamaError(f"serve: cannot resolve the host '{host}': {exc.strerror}") from None
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
    except OSError as exc:
        sock.close()
        raise LlamaError(f"serve: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings) -> None:
    """Serve until stopped, printing the URL first."""
    server = Server(settings)
    print(server.banner(), flush=True)
    if settings.host not in (LOCALHOST, "localhost", "::1"):
        print(f"note: listening on {settings.host}, reachable from other machines", file=sys.stderr, flush=True)
    server.run()
    print("gene-jit serve: stopped", flush=True)
