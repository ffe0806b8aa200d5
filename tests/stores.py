"""Real model stores for tests: an MLflow tracking server and an S3 API server (moto).

The MLflow server runs over a sqlite backend with a local artifact root, on 127.0.0.1; a second
one runs MLflow's basic-auth app (an admin, and users made per test) for the permission cases,
apart because its password check costs a third of a second per request. A first start creates
the tables (10-30 s), so each is started as soon as a test that needs it is collected, and
waited for when that test runs. moto's server mode speaks the S3
API on 127.0.0.1; a second one with authentication on answers 403 to unknown keys.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx

from tests.helpers import free_port

MLFLOW_ADMIN = ("admin", "admin-password-for-tests-1")
S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class Process:
    """A server process on a free loopback port, its output in a log file."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str], port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
            )

    def wait_ready(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=1.0):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate, or kill after 10 s; nothing when it has already exited."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class MLflowServer(Process):
    """``mlflow server`` with sqlite and a local artifact root; with ``auth``, basic auth."""

    def __init__(self, folder: Path, *, auth: bool = False) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.auth = auth
        config = folder / "basic_auth.ini"
        config.write_text(
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"  # a new user may read nothing
            f"database_uri = sqlite:///{folder / 'auth.db'}\n"
            f"admin_username = {MLFLOW_ADMIN[0]}\n"
            f"admin_password = {MLFLOW_ADMIN[1]}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        port = free_port()
        super().__init__(
            [
                str(Path(sys.executable).with_name("mlflow")),
                "server",
                *(["--app-name", "basic-auth"] if auth else []),
                "--backend-store-uri",
                f"sqlite:///{folder / 'mlflow.db'}",
                "--artifacts-destination",
                str(folder / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            folder / "server.log",
            {
                "MLFLOW_AUTH_CONFIG_PATH": str(config),
                "MLFLOW_FLASK_SERVER_SECRET_KEY": "tests",
                # No background job runners (a dozen processes) for a registry under test.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            },
            port,
        )

    def env(self, user: tuple[str, str] = MLFLOW_ADMIN) -> dict[str, str]:
        """The variables a client needs to reach this server (as ``user``, with auth)."""
        if not self.auth:
            return {"MLFLOW_TRACKING_URI": self.url}
        return {
            "MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": user[0],
            "MLFLOW_TRACKING_PASSWORD": user[1],
        }

    def create_user(self, name: str, password: str) -> None:
        """A user through the auth app's REST API (the admin creates it)."""
        httpx.post(
            f"{self.url}/api/2.0/mlflow/users/create",
            json={"username": name, "password": password},
            auth=MLFLOW_ADMIN,
            timeout=10,
        ).raise_for_status()


class S3Server(Process):
    """moto's S3 API server; with ``authenticate`` it checks keys from the first request on."""

    def __init__(self, log: Path, *, authenticate: bool = False) -> None:
        port = free_port()
        env = {"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if authenticate else {}
        super().__init__(
            [
                str(Path(sys.executable).with_name("moto_server")),
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            log,
            env,
            port,
        )

    def env(self) -> dict[str, str]:
        """The variables boto3 needs to reach this server with the test keys."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_DEFAULT_REGION": "us-east-1", **S3_KEYS}

    def client(self) -> object:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", **_keys())


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_KEYS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_KEYS["AWS_SECRET_ACCESS_KEY"],
    }
