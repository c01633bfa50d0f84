"""Real processes for the distributed tests: private Redis servers, Celery workers
and beat as subprocesses, and a stub upstream HTTP server on 127.0.0.1 that the tests script.

Private servers run on free ports so a test may stop or restart them without touching the
machine's shared services.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class RedisServer:
    """A private redis-server. Append-only with fsync on every write, like a broker that must not
    lose queued tasks across a restart."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (make test installs it)"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _port_open(self.port), timeout=10, what="redis to listen")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis flushes its append-only file and exits
            self.proc.wait(10)
        wait_for(lambda: not _port_open(self.port), timeout=10, what="redis to stop")

    def cli(self, *args: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()


def process_groups_stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process's group, wait for it, then SIGKILL what is left of each group (a
    worker's pool children can outlive their leader)."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


class CeleryProcess:
    """`celery -A kasparro worker|beat` in its own process group, its output kept in a log file."""

    def __init__(self, kind: str, env: dict[str, str], log: Path, *args: str) -> None:
        self.kind, self.log = kind, log
        self.handle = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "kasparro", kind, "--loglevel=INFO", *args],
            cwd=ROOT,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        marker = "ready." if self.kind == "worker" else "beat: Starting..."
        wait_for(
            lambda: marker in self.output() or self.proc.poll() is not None,
            timeout=timeout,
            what=f"celery {self.kind} to start",
        )
        assert self.proc.poll() is None, f"celery {self.kind} exited:\n{self.output()[-3000:]}"

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker and its pool children die at once."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL whatever of it is left (pool children outlive a dead leader)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.handle.close()


class StubUpstream:
    """CoinGecko and CoinPaprika on 127.0.0.1, serving recorded bodies. Tests script it: a delay
    per path, responses to serve first, and every call recorded with its time and headers."""

    def __init__(self, bodies: dict[tuple[str, str], bytes]) -> None:
        self.bodies = bodies  # (path, page or "") -> body
        self.calls: list[dict[str, Any]] = []
        self.delay: dict[str, float] = {}
        self.scripted: dict[str, deque[tuple[int, dict[str, str], bytes]]] = defaultdict(deque)
        self.arrived: dict[str, threading.Event] = defaultdict(threading.Event)
        # Answers made per request, by path prefix: (path, query) -> (status, body).
        self.answers: dict[str, Callable[[str, dict[str, list[str]]], tuple[int, bytes]]] = {}
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                page = parse_qs(url.query).get("page", [""])[0]
                with stub.lock:
                    stub.calls.append(
                        {
                            "at": time.time(),
                            "path": url.path,
                            "query": url.query,
                            "headers": dict(self.headers.items()),
                        }
                    )
                    scripted = stub.scripted[url.path].popleft() if stub.scripted[url.path] else None
                stub.arrived[url.path].set()
                answer = next((fn for prefix, fn in stub.answers.items() if url.path.startswith(prefix)), None)
                if scripted is None and answer is not None:
                    time.sleep(stub.delay.get(url.path, 0))
                    status, body = answer(url.path, parse_qs(url.query))
                    headers = {}
                elif scripted is None:
                    time.sleep(stub.delay.get(url.path, 0))
                    body = stub.bodies.get((url.path, page))
                    status, headers = (200, {}) if body is not None else (404, {})
                    body = body if body is not None else b'{"error": "not found"}'
                else:
                    status, headers, body = scripted
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client (a killed worker) went away

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def calls_to(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [call for call in self.calls if call["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
