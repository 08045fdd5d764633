"""A real GCS emulator for the tests: ``gcp-storage-emulator`` as a subprocess on 127.0.0.1.

:class:`GCSEmulator` starts the emulator (the PyPI package, a JSON-API server that stores
objects on disk below a temp folder, so a restart keeps them) on a free port, waits until it
answers, and stops it. :meth:`GCSEmulator.stop` / :meth:`GCSEmulator.start` on the same port
simulate an outage and the recovery.

:class:`FaultProxy` is a small HTTP reverse proxy in front of it: the client talks to the
proxy, which forwards every request unchanged, or answers the next *n* requests with a
scripted status (503, 429, …) instead. It counts requests, so a test can assert that a 503
was retried. Faults and counts apply to object requests only (paths with ``/o``: listing,
metadata, upload, download): google-cloud-storage >= 3.x also fetches bucket metadata from
a background thread (its bucket-metadata cache), which would make counts of every request
racy.

Use through the ``gcs`` fixture in ``test_delivery.py``; ``STORAGE_EMULATOR_HOST`` points the
google client at the proxy (anonymous credentials).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"
OBJECT_PATH = re.compile(r"/b/[^/?]+/o(?:[/?]|$)")
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _emulator_command() -> list[str]:
    script = Path(sys.executable).with_name("gcp-storage-emulator")
    if script.exists():
        return [str(script)]
    found = shutil.which("gcp-storage-emulator")
    if found:
        return [found]
    return [sys.executable, "-m", "gcp_storage_emulator"]


class GCSEmulator:
    """``gcp-storage-emulator start --host 127.0.0.1 --port PORT`` with on-disk data.

    Attributes:
        port: the emulator's port (kept across :meth:`stop` / :meth:`start`).
        data_dir: where it stores buckets and objects (``<data_dir>/.cloudstorage``).
        startup_s: seconds the last :meth:`start` took until the server answered.
    """

    def __init__(self, data_dir: Path, *, default_bucket: str | None = None, port: int | None = None):
        self.data_dir = Path(data_dir)
        self.default_bucket = default_bucket
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.startup_s = 0.0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def object_file(self, bucket: str, object_name: str) -> Path:
        """Where the emulator keeps an object's bytes (to corrupt them behind its back)."""
        return self.data_dir / ".cloudstorage" / bucket / object_name

    def start(self, timeout_s: float = 20.0) -> None:
        assert self.proc is None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [*_emulator_command(), "-d", str(self.data_dir), "start", "--host", HOST, "--port", str(self.port), "-q"]
        if self.default_bucket:
            cmd += ["--default-bucket", self.default_bucket]
        env = {k: v for k, v in os.environ.items() if k not in ("STORAGE_EMULATOR_HOST", "PORT", "HOST")}
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = started + timeout_s
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.proc = None
                raise RuntimeError(f"gcp-storage-emulator exited early: {err[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=0.5) as r:
                    r.read()
                break
            except OSError as exc:
                if time.perf_counter() > deadline:
                    self.stop()
                    raise RuntimeError(f"gcp-storage-emulator did not answer on {self.url} in {timeout_s} s") from exc
                time.sleep(0.02)
        self.startup_s = time.perf_counter() - started

    def stop(self) -> None:
        """Stop the emulator (its data stays on disk); the port then refuses connections."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()

    def __enter__(self) -> GCSEmulator:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class FaultProxy:
    """HTTP reverse proxy on 127.0.0.1 in front of ``upstream_port``, with scripted failures.

    Attributes:
        requests: how many object requests reached the proxy.
        faults_served: how many of them it answered with a scripted failure.
        log: ``(method, path, status)`` of every request, bucket-level ones included.
        latency_s: delay added before forwarding each request (a network round trip).
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._faults: list[int] = []
        self.requests = 0
        self.faults_served = 0
        self.log: list[tuple[str, str, int]] = []
        self.latency_s = 0.0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # one send per response: no Nagle / delayed-ACK stalls

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                is_object = bool(OBJECT_PATH.search(self.path))
                with proxy._lock:
                    fault = None
                    if is_object:
                        proxy.requests += 1
                        fault = proxy._faults.pop(0) if proxy._faults else None
                        if fault is not None:
                            proxy.faults_served += 1
                    proxy.log.append((self.command, self.path, fault or 0))
                if fault is not None:
                    payload = b'{"error": {"code": %d, "message": "injected by FaultProxy"}}' % fault
                    self.send_response(fault)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                if proxy.latency_s:
                    time.sleep(proxy.latency_s)
                try:
                    conn = http.client.HTTPConnection(HOST, proxy.upstream_port, timeout=30)
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except OSError:
                    # upstream down: drop the connection like a dead server would
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP_HEADERS and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="gcs-fault-proxy", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` object requests with ``status`` instead of forwarding them."""
        with self._lock:
            self._faults.extend([status] * count)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


GCS_ENV = ("HYBRID_AUDIO_GCS_BUCKET", "HYBRID_AUDIO_GCS_PREFIX", "GOOGLE_CLOUD_PROJECT")


@contextmanager
def emulator_behind_proxy(folder: Path, monkeypatch, bucket: str):
    """(emulator, proxy): a real emulator with ``bucket``, reached through a FaultProxy that
    ``STORAGE_EMULATOR_HOST`` points at; the GCS variables unset. Both stopped afterwards."""
    emulator = GCSEmulator(folder, default_bucket=bucket)
    emulator.start()
    proxy = FaultProxy(emulator.port)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    for var in GCS_ENV:
        monkeypatch.delenv(var, raising=False)
    try:
        yield emulator, proxy
    finally:
        proxy.close()
        emulator.stop()
