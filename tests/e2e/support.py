"""Running the real server as a subprocess, and talking to it over HTTP.

``ServerProcess`` starts ``python -m cambist.cli serve`` in its own session (granian forks a
worker, so the whole process group is signalled), logs to a file, waits for ``/ready`` with a
deadline, and SIGKILLs the group on ``kill`` and at ``close`` whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

API = "/api/v1"
START_TIMEOUT_S = 60.0  # imports, migrations and recovery on a loaded 2-core machine
CLI_TIMEOUT_S = 60.0
KILL_WAIT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(data_dir: Path, database_url: str | None = None) -> dict[str, str]:
    """This process's environment without any CAMBIST_* setting (an unknown one is an error
    in the server), plus the data dir, a fresh secret key and the database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMBIST_")}
    env["CAMBIST_DATA_DIR"] = str(data_dir)
    env["CAMBIST_SECRET_KEY"] = secrets.token_hex(32)
    env["CAMBIST_LOG_LEVEL"] = "WARNING"
    if database_url is not None:
        env["CAMBIST_DATABASE_URL"] = database_url
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cambist.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


class ServerProcess:
    def __init__(
        self, env: dict[str, str], log_path: Path, command: tuple[str, ...] = ("serve", "--no-demo")
    ) -> None:
        """``command``: the ``cambist`` subcommand and its options (``engine``, ``gateway``...)."""
        self.env = env
        self.log_path = log_path
        self.command = command
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.port = free_port()
        with self.log_path.open("ab") as log:
            log.write(f"\n--- starting on port {self.port} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cambist.cli", *self.command, "--port", str(self.port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the worker dies with it
            )

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.process is not None, "not started"
                if self.process.poll() is not None:
                    raise AssertionError(
                        f"the server exited with {self.process.returncode}\n{self.log_tail()}"
                    )
                try:
                    response = client.get("/ready")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text}"
                except httpx.HTTPError as error:
                    last = repr(error)
                time.sleep(0.1)
        raise AssertionError(f"the server was not ready within {timeout_s} s: {last}\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(KILL_WAIT_S)
        self.process = None  # never signal this group id again: it may be reused

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def expect(response: httpx.Response, *statuses: int) -> Any:
    assert response.status_code in statuses, (response.request.method, response.request.url, response.text)
    return response.json() if response.content else None


async def paged(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], headers: dict[str, str]
) -> list[Any]:
    """Every item of a paginated listing (bounded: at most 100 pages)."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(100):
        query = dict(params, limit=1000, **({"cursor": cursor} if cursor else {}))
        body = expect(await client.get(path, params=query, headers=headers), 200)
        items.extend(body["data"])
        cursor = body.get("nextCursor")
        if not cursor:
            return items
    raise AssertionError(f"{path}: more than 100 pages")
