"""An ingress for tests: nginx on 127.0.0.1, routing by Host (HTTP/1.1) and :authority (gRPC).

Like a cluster's gateway, it sends a request on to the predictor only when the Host names the
service and the bearer token is the expected one; any other host gets nginx's 404, a wrong or
missing token a 401. gRPC goes through nginx's ``grpc_pass`` over HTTP/2 (h2c).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.stores import stop_process

HOST = "taxi.default.example.com"
TOKEN = "t0ken-for-tests"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if found is None:
        pytest.fail("nginx is not installed; `make test` installs it (Debian's nginx-light)")
    return found


class Ingress:
    """nginx in front of one predictor's HTTP and gRPC ports."""

    def __init__(self, folder: Path, *, http_port: int, grpc_port: int) -> None:
        self.http = free_port()
        self.grpc = free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        self.grpc_target = f"127.0.0.1:{self.grpc}"
        folder.mkdir(parents=True, exist_ok=True)
        guard = f'if ($http_authorization != "Bearer {TOKEN}") {{ return 401; }}'
        temp = " ".join(
            f"{kind}_temp_path {folder / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        config = folder / "nginx.conf"
        config.write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
            f"error_log {folder / 'error.log'} warn;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n  access_log {folder / 'access.log'};\n  {temp}\n"
            f"  server {{ listen 127.0.0.1:{self.http} default_server; return 404; }}\n"
            f"  server {{ listen 127.0.0.1:{self.http}; server_name {HOST};\n"
            f"    location / {{ {guard} proxy_pass http://127.0.0.1:{http_port}; }} }}\n"
            f"  server {{ listen 127.0.0.1:{self.grpc} http2 default_server; return 404; }}\n"
            f"  server {{ listen 127.0.0.1:{self.grpc} http2; server_name {HOST};\n"
            f"    location / {{ {guard} grpc_pass grpc://127.0.0.1:{grpc_port}; }} }}\n"
            "}\n"
        )
        self._log = (folder / "nginx.out").open("wb")
        self.process = subprocess.Popen(
            [nginx_binary(), "-c", str(config), "-p", str(folder)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait(folder)

    def _wait(self, folder: Path) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((folder / "error.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", self.grpc), timeout=0.5).close()
                socket.create_connection(("127.0.0.1", self.http), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not listen in 15s")

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()
