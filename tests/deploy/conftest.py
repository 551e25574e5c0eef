"""Fixtures for the deployment kit: the backends nginx balances over, TLS files, nginx itself.

- ``two_backends`` (module) -- the base URLs (``http://127.0.0.1:<port>``) of two Cambist
  gateways, and ``killable_backends`` (per test) -- the same as a ``Backends`` whose members a
  test may kill. Both come from ``running_backends``, the one place that knows what a backend
  is: one ``cambist engine`` and two ``cambist gateway`` processes on a fresh PostgreSQL
  database and their own Redis namespace (``tests/distributed/support.py``), so they share
  state (``Backends.shared_state``).
- ``nginx_binary`` (session) -- ``nginx`` on PATH or ``/usr/sbin/nginx``; missing: the tests
  are skipped, or fail under ``CI=true``.
- ``tls`` (session) -- a CA and a server certificate for 127.0.0.1/localhost made with
  ``cryptography``.
- ``start_nginx`` -- a factory: renders ``deploy/nginx/cambist.conf.template`` with
  ``deploy/nginx/render.py`` for the given upstreams into a temporary prefix (pid, logs, temp
  files, free ports on 127.0.0.1), checks it with ``nginx -t``, runs ``nginx -g 'daemon off;'``
  and stops it at the end of the test.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from distributed.support import Cluster
from e2e.support import ServerProcess, cli, free_port

ROOT = Path(__file__).resolve().parents[2]
NGINX_DIR = ROOT / "deploy" / "nginx"
NGINX_START_TIMEOUT_S = 10.0
NGINX_STOP_TIMEOUT_S = 10.0
# The address nginx connects to the backends from: the backends believe its X-Forwarded-For.
NGINX_ADDRESS = "127.0.0.1"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


# ---------------------------------------------------------------- backends


@dataclass
class Backends:
    servers: list[ServerProcess]
    shared_state: bool  # one store behind all of them: a session made on one works on the other

    @property
    def urls(self) -> list[str]:
        return [server.base_url for server in self.servers]

    def kill(self, index: int) -> None:
        self.servers[index].kill()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``cambist <args>`` against the store of the first backend (all of them, once shared)."""
        return cli(self.servers[0].env, *args)


@contextlib.contextmanager
def running_backends(directory: Path, database_url: str, redis_url: str) -> Iterator[Backends]:
    cluster = Cluster(directory, database_url, redis_url, gateways=2)
    try:
        cluster.start()
        yield Backends(cluster.gateways, shared_state=True)
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def two_backends(
    tmp_path_factory: pytest.TempPathFactory, _postgres_admin: Any, redis_url: str
) -> Iterator[list[str]]:
    directory = tmp_path_factory.mktemp("backends")
    with running_backends(directory, _postgres_admin.create(), redis_url) as backends:
        yield backends.urls


@pytest.fixture
def killable_backends(
    tmp_path: Path, fresh_postgres_url: Callable[[], str], redis_url: str
) -> Iterator[Backends]:
    with running_backends(tmp_path / "backends", fresh_postgres_url(), redis_url) as backends:
        yield backends


# ---------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # what clients verify against
    certificate: Path  # server certificate chain, leaf first
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    directory = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    validity = (now - dt.timedelta(minutes=5), now + dt.timedelta(days=1))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Cambist test CA"))
        .issuer_name(_name("Cambist test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    files.key.chmod(0o600)
    return files


# ---------------------------------------------------------------- nginx


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        reason = "nginx not found on PATH or at /usr/sbin/nginx (apt-get install nginx)"
        if _in_ci():
            pytest.fail(reason + "; CI=true requires it (.ci/run installs it when run as root)")
        pytest.skip(reason)
    return found


def load_render() -> ModuleType:
    """``deploy/nginx/render.py``, which is a script, not a package."""
    spec = importlib.util.spec_from_file_location("cambist_nginx_render", NGINX_DIR / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAIN_CONF = """\
{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{
    worker_connections 512;
}}
http {{
    client_body_temp_path {prefix}/temp/body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    include {prefix}/cambist.conf;
}}
"""


@dataclass
class Nginx:
    binary: str
    prefix: Path
    tls: TlsFiles
    http_port: int
    https_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    def client(self, **options: object) -> httpx.Client:
        return httpx.Client(
            base_url=self.https_url, verify=self.tls.client_context(), timeout=15.0, **options
        )  # type: ignore[arg-type]

    def access_lines(self) -> list[str]:
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def log_tail(self, lines: int = 30) -> str:
        path = self.prefix / "error.log"
        text = path.read_text(errors="replace") if path.exists() else "(no error log)"
        return "\n".join(text.splitlines()[-lines:])

    def write_config(self, gateways: Sequence[str], max_fails: int) -> None:
        render = load_render()
        values = render.values_for(
            server_name="localhost 127.0.0.1",
            gateways=gateways,
            certificate=str(self.tls.certificate),
            certificate_key=str(self.tls.key),
            public_origin=self.https_url,
            http_listen=f"127.0.0.1:{self.http_port}",
            https_listen=f"127.0.0.1:{self.https_port}",
            access_log=str(self.access_log),
            max_fails=max_fails,
        )
        (self.prefix / "cambist.conf").write_text(render.render(values))
        (self.prefix / "temp").mkdir(exist_ok=True)
        # Workers run as nobody by default and could not reach a root-only temp dir.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf.write_text(MAIN_CONF.format(user=user, prefix=self.prefix))

    def command(self, *extra: str) -> list[str]:
        return [
            self.binary,
            "-p",
            str(self.prefix),
            "-c",
            str(self.conf),
            "-e",
            str(self.prefix / "error.log"),
            *extra,
        ]

    def start(self) -> None:
        check = subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30, check=False)
        assert check.returncode == 0, f"nginx -t refused the config:\n{check.stderr}"
        with (self.prefix / "nginx.out").open("ab") as out:
            self.process = subprocess.Popen(
                self.command("-g", "daemon off;"),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + NGINX_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited with {self.process.returncode}\n{self.log_tail()}")
            if all(_listening(port) for port in (self.http_port, self.https_port)):
                return
            time.sleep(0.05)
        raise AssertionError(f"nginx did not listen within {NGINX_START_TIMEOUT_S} s\n{self.log_tail()}")

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # fast shutdown: master and workers
        try:
            process.wait(NGINX_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(NGINX_STOP_TIMEOUT_S)
        self.process = None


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


StartNginx = Callable[..., Nginx]


@pytest.fixture
def start_nginx(
    nginx_binary: str, tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartNginx]:
    """``start_nginx(upstream_urls, max_fails=3)``: a running nginx in front of those URLs."""
    started: list[Nginx] = []

    def start(upstreams: Sequence[str], max_fails: int = 3) -> Nginx:
        nginx = Nginx(nginx_binary, tmp_path_factory.mktemp("nginx"), tls, free_port(), free_port())
        nginx.write_config([host_port(url) for url in upstreams], max_fails)
        started.append(nginx)
        nginx.start()
        return nginx

    yield start
    for nginx in started:
        nginx.stop()
