"""One engine and several gateways as separate processes, on PostgreSQL and Redis.

``Cluster`` starts ``cambist engine`` and ``cambist gateway`` subprocesses (each in its own
process group, logging to a file) that share a fresh PostgreSQL database and a Redis
namespace of their own, so clusters of different tests never see each other's commands.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from e2e.support import ServerProcess, server_env

TRUSTED_PROXY = "127.0.0.1"


class Cluster:
    def __init__(
        self,
        directory: Path,
        database_url: str,
        redis_url: str,
        *,
        gateways: int = 2,
        extra_env: dict[str, str] | None = None,
        engine_options: tuple[str, ...] = ("--no-demo",),
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url
        self.namespace = f"test-{secrets.token_hex(6)}"
        self.env = server_env(directory, database_url)
        self.env["CAMBIST_REDIS_URL"] = redis_url
        self.env["CAMBIST_REDIS_NAMESPACE"] = self.namespace
        self.env["CAMBIST_TRUSTED_PROXIES"] = TRUSTED_PROXY
        self.env.update(extra_env or {})
        self.engine = ServerProcess(self.env, directory / "engine.log", ("engine", *engine_options))
        self.gateways = [
            ServerProcess(self.env, directory / f"gateway{index}.log", ("gateway",))
            for index in range(gateways)
        ]

    @property
    def urls(self) -> list[str]:
        return [gateway.base_url for gateway in self.gateways]

    def start(self) -> None:
        self.engine.start()
        self.engine.wait_ready()  # migrations and recovery first; gateways wait for the schema
        for gateway in self.gateways:
            gateway.start()
        for gateway in self.gateways:
            gateway.wait_ready()

    def restart_engine(self) -> None:
        self.engine.kill()
        self.engine.start()
        self.engine.wait_ready()

    def close(self) -> None:
        for gateway in self.gateways:
            gateway.kill()
        self.engine.kill()

    def logs(self) -> str:
        parts = [f"--- engine\n{self.engine.log_tail()}"]
        parts += [f"--- gateway {i}\n{g.log_tail()}" for i, g in enumerate(self.gateways)]
        return "\n".join(parts)
