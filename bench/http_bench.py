"""End-to-end HTTP benchmark: durable orders and market-data reads through ``cambist serve``.

For each backend (SQLite in a temporary directory; PostgreSQL on a fresh database
``cambist_bench_<random>`` that is dropped at the end, skipped if the server is unreachable) it
starts ``cambist serve --no-demo`` as a subprocess on a free port, creates an admin with
``cambist admin create-user``, registers and logs in the traders (one JWT each) and credits them
through the admin API, then measures:

  orders  durable orders/s and latency p50/p90/p99 at 1 client and at 64 concurrent clients.
          Each client replays its own seeded mix of limit orders around a fixed mid price:
          resting orders (GTC, 1-40 steps away from mid), crossing orders (GTC or IOC, through
          the mid, taking liquidity) and cancels of its own open orders, which keep the book
          bounded (at most OPEN_ORDERS_MAX per client). A 201 from POST /api/v1/orders means the
          engine committed the order (journal + rows in one transaction) before answering.
  reads   GET /api/v1/ticker/BTC-USDT and GET /api/v1/orderbook/BTC-USDT?depth=20 requests/s at
          64 clients, with the book the order phases left behind.

The load generator is ``load_client.py`` (raw asyncio streams on uvloop, pre-encoded
requests) so that it costs ~20 us of CPU per request and is not what we measure. The table
also shows the CPU used by the server, the client and PostgreSQL during each phase, in % of
one core: the machine has 2 cores in all.

    .venv/bin/python bench/http_bench.py [--quick] [--backend sqlite|postgres|both]
        [--seconds 10] [--clients 64] [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--profile DIR]             # py-spy the server during each order phase, print hotspots
        [--relaxed-durability]      # experiment: no fsync per commit (attribution only)
        [--switch-interval-ms 0.5]  # experiment: the server's GIL switch interval

These are measurements, printed; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_client import (
    HttpConnection,
    Stats,
    build_request,
    install_uvloop,
    open_connections,
    percentile_ms,
    process_cpu_s,
    run_closed_loop,
)

HOST = "127.0.0.1"
SYMBOL = "BTC-USDT"
MID_PRICE_CENTS = 3_000_000  # 30,000.00 USDT
PRICE_STEP_CENTS = 50  # 0.50 USDT between the price levels the mix uses (tick is 0.01)
RESTING_STEPS_MAX = 40  # resting orders sit 1..40 steps from mid: up to 40 levels a side
CROSSING_STEPS_MAX = 4  # crossing orders reach 1..4 steps through the mid
LOTS_MIN, LOTS_MAX = 10, 100  # quantity in lots of 0.0001 BTC: 0.001 to 0.01 BTC
CROSSING_SHARE = 0.35
IOC_SHARE_OF_CROSSING = 0.5
CANCEL_SHARE = 0.2  # of actions, when the client has an open order
OPEN_ORDERS_MAX = 16  # per client: over this the client cancels its oldest first
REQUEST_POOL = 4096  # pre-encoded order requests per client, replayed in a cycle
CREDIT = {"BTC": "1000", "USDT": "100000000"}
PASSWORD = "bench-password-1"
SERVER_START_TIMEOUT_S = 90
OPEN_STATUSES = {"new", "partially_filled"}
SEED = 20240601


class OrderAnswer(msgspec.Struct):
    orderId: int
    status: str


_decode_order = msgspec.json.Decoder(OrderAnswer).decode


# ---------------------------------------------------------------------------- the order mix


def order_pool(rng: random.Random, count: int) -> list[bytes]:
    """Bodies of ``count`` limit orders: a fixed, seeded mix around the mid price."""
    bodies = []
    for _ in range(count):
        side = "buy" if rng.random() < 0.5 else "sell"
        lots = rng.randint(LOTS_MIN, LOTS_MAX)
        tif = "GTC"
        if rng.random() < CROSSING_SHARE:
            steps = rng.randint(1, CROSSING_STEPS_MAX)  # through the mid: takes liquidity
            offset = steps if side == "buy" else -steps
            if rng.random() < IOC_SHARE_OF_CROSSING:
                tif = "IOC"
        else:
            steps = rng.randint(1, RESTING_STEPS_MAX)  # own side of the mid: rests
            offset = -steps if side == "buy" else steps
        cents = MID_PRICE_CENTS + offset * PRICE_STEP_CENTS
        order = {
            "symbol": SYMBOL,
            "side": side,
            "type": "limit",
            "timeInForce": tif,
            "price": f"{cents // 100}.{cents % 100:02d}",
            "quantity": f"0.{lots:04d}" if lots < 10_000 else str(lots / 10_000),
        }
        bodies.append(json.dumps(order, separators=(",", ":")).encode())
    return bodies


@dataclass(slots=True)
class Trader:
    email: str
    user_id: int = 0
    token: str = ""
    orders: list[bytes] = field(default_factory=list)  # pre-encoded POST /orders requests
    next_order: int = 0
    open_orders: deque[int] = field(default_factory=deque)
    cancel_prefix: bytes = b""
    cancel_suffix: bytes = b""
    rng: random.Random = field(default_factory=random.Random)

    def prepare(self, host: str, index: int) -> None:
        auth = [("Authorization", f"Bearer {self.token}")]
        self.rng = random.Random(SEED * 1000 + index)
        self.orders = [
            build_request("POST", "/api/v1/orders", host, body=body, headers=auth)
            for body in order_pool(self.rng, REQUEST_POOL)
        ]
        template = build_request("DELETE", "/api/v1/orders/{ID}", host, headers=auth)
        self.cancel_prefix, self.cancel_suffix = template.split(b"{ID}")


@dataclass(slots=True)
class OrderPhase:
    clients: int
    wall_s: float = 0.0
    places: Stats = field(default_factory=Stats)
    cancels: Stats = field(default_factory=Stats)
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core
    server_threads: list[tuple[str, float]] = field(default_factory=list)
    engine: str = ""


async def run_orders(
    connections: list[HttpConnection], traders: list[Trader], duration_s: float
) -> OrderPhase:
    """Closed loop: each client places or cancels, waits for the committed answer, repeats."""
    phase = OrderPhase(clients=len(connections))
    deadline = time.perf_counter() + duration_s
    clock = time.perf_counter_ns

    async def client(connection: HttpConnection, trader: Trader) -> None:
        places, cancels = phase.places, phase.cancels
        rng = trader.rng
        open_orders = trader.open_orders
        while time.perf_counter() < deadline:
            cancel = bool(open_orders) and (
                len(open_orders) >= OPEN_ORDERS_MAX or rng.random() < CANCEL_SHARE
            )
            if cancel:
                order_id = open_orders.popleft()
                data = trader.cancel_prefix + str(order_id).encode() + trader.cancel_suffix
                stats, expected = cancels, 200
            else:
                data = trader.orders[trader.next_order % REQUEST_POOL]
                trader.next_order += 1
                stats, expected = places, 201
            started = clock()
            try:
                status, body = await connection.request(data)
            except Exception as error:  # counted and reported, never fatal
                stats.errors[type(error).__name__] += 1
                connection.close()
                await asyncio.sleep(0.01)
                continue
            elapsed = clock() - started
            stats.statuses[str(status)] += 1
            if status != expected:
                stats.errors[str(status)] += 1
                continue
            stats.latencies_ns.append(elapsed)
            if not cancel:
                answer = _decode_order(body)
                if answer.status in OPEN_STATUSES:
                    open_orders.append(answer.orderId)

    started = time.perf_counter()
    await asyncio.gather(*(client(c, t) for c, t in zip(connections, traders, strict=True)))
    phase.wall_s = time.perf_counter() - started
    return phase


# ---------------------------------------------------------------------------- the server


def always(request: bytes) -> Callable[[int], bytes]:
    """The same pre-encoded request for every client."""
    return lambda _client: request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def cambist_command() -> list[str]:
    script = Path(sys.executable).parent / "cambist"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cambist.cli"]


def server_env(
    data_dir: Path, database_url: str, switch_interval_ms: float | None, relaxed: bool
) -> dict[str, str]:
    # Settings reject unknown CAMBIST_* variables: start from a clean slate for ours.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMBIST_")}
    env.update(
        CAMBIST_DATA_DIR=str(data_dir),
        CAMBIST_SECRET_KEY=secrets.token_urlsafe(48),
        CAMBIST_DATABASE_URL=database_url,
        CAMBIST_LOG_LEVEL="WARNING",
    )
    if relaxed:
        env["CAMBIST_SQLITE_SYNCHRONOUS"] = "NORMAL"  # WAL without fsync at each commit
    if switch_interval_ms is not None:
        # An experiment without touching src/: every Python process started with this
        # PYTHONPATH imports our sitecustomize, which shortens the GIL switch interval.
        site = data_dir / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(
            f"import sys\nsys.setswitchinterval({switch_interval_ms / 1000!r})\n"
        )
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


def children(pid: int) -> list[int]:
    """All descendants of ``pid`` (granian runs its worker as a child process)."""
    found: list[int] = []
    parents = {pid}
    changed = True
    while changed:
        changed = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in found:
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid in parents:
                found.append(int(entry))
                parents.add(int(entry))
                changed = True
    return found


POSTGRES_SHARED_WORKERS = ("walwriter", "checkpointer", "background writer")


def postgres_cpu_s(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL process working for us: the backends connected to our
    database, and the WAL writer, checkpointer and background writer (shared, but in a
    benchmark it is mostly our WAL they write). Other databases' backends are left out: the
    PostgreSQL server may be shared with other work."""
    found: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip() != "postgres":
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                title = cmdline.read().decode(errors="replace")
        except OSError:
            continue
        if f" {database} " in title or any(f": {w}" in title for w in POSTGRES_SHARED_WORKERS):
            found[int(entry)] = process_cpu_s(int(entry))
    return found


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of a process (threads of one name summed)."""
    result: dict[str, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    main_name = ""
    with contextlib.suppress(OSError):
        main_name = Path(f"/proc/{pid}/comm").read_text().strip()
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/stat", "rb") as stat:
                    raw = stat.read()
            except OSError:
                continue
            name = raw[raw.index(b"(") + 1 : raw.rindex(b")")].decode(errors="replace")
            fields = raw.rsplit(b")", 1)[1].split()
            if tid == str(pid):
                key = "event loop (main)"
            elif name == main_name:  # Python threads keep the process name: writer and read pool
                key = "other Python threads"
            else:
                key = _thread_family(name)
            result[key] = result.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return result


def _thread_family(name: str) -> str:
    return name.rstrip("0123456789_-") or name


@dataclass(frozen=True, slots=True)
class CpuSample:
    wall_s: float
    server_s: float
    client_s: float
    postgres_s: dict[int, float]
    threads_s: dict[str, float]


class CpuMeter:
    """CPU used by the server (all its processes), this client and PostgreSQL over one phase."""

    def __init__(self, server_pids: list[int], database: str | None) -> None:
        self.server_pids = server_pids
        self.database = database
        self.worker = server_pids[-1]  # granian's worker: the process running the app

    def sample(self) -> CpuSample:
        return CpuSample(
            time.perf_counter(),
            sum(process_cpu_s(p) for p in self.server_pids),
            process_cpu_s(),
            postgres_cpu_s(self.database) if self.database else {},
            thread_cpu_s(self.worker),
        )

    @staticmethod
    def percent(before: CpuSample, after: CpuSample) -> tuple[dict[str, float], list[tuple[str, float]]]:
        wall = after.wall_s - before.wall_s
        # A backend that started during the phase spent all its CPU in it; one that ended is lost.
        pg = sum(cpu - before.postgres_s.get(pid, 0.0) for pid, cpu in after.postgres_s.items())
        cpu = {
            "server": 100 * (after.server_s - before.server_s) / wall,
            "client": 100 * (after.client_s - before.client_s) / wall,
            "postgres": 100 * pg / wall,
        }
        threads = [
            (name, 100 * (spent - before.threads_s.get(name, 0.0)) / wall)
            for name, spent in after.threads_s.items()
        ]
        threads.sort(key=lambda item: -item[1])
        return cpu, [t for t in threads if t[1] >= 1.0]


@contextlib.contextmanager
def running_server(
    data_dir: Path, database_url: str, args: argparse.Namespace
) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    env = server_env(data_dir, database_url, args.switch_interval_ms, args.relaxed_durability)
    admin = subprocess.run(
        [*cambist_command(), "admin", "create-user", "--email", "admin@bench.example.com",
         "--password", PASSWORD, "--role", "admin"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if admin.returncode != 0:
        raise RuntimeError(f"cambist admin create-user failed: {admin.stderr.strip()}")
    port = free_port()
    log_path = data_dir / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [*cambist_command(), "serve", "--no-demo", "--host", HOST, "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield port, server, log_path
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


async def wait_ready(port: int, server: subprocess.Popen[bytes], log_path: Path) -> None:
    request = build_request("GET", "/ready", f"{HOST}:{port}")
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            connection = await HttpConnection.open(HOST, port)
            status, _ = await connection.request(request)
            connection.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(
        f"the server was not ready in {SERVER_START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}"
    )


async def call(connection: HttpConnection, request: bytes, expected: int) -> dict:  # type: ignore[type-arg]
    status, body = await connection.request(request)
    if status != expected:
        raise RuntimeError(f"setup request failed with {status}: {body[:300]!r}")
    return json.loads(body) if body else {}


def json_request(method: str, path: str, host: str, payload: dict, token: str | None = None) -> bytes:  # type: ignore[type-arg]
    headers = [("Authorization", f"Bearer {token}")] if token else []
    return build_request(method, path, host, body=json.dumps(payload).encode(), headers=headers)


async def setup_traders(port: int, count: int, tag: str) -> list[Trader]:
    """Register, log in and credit ``count`` traders; 8 at a time (argon2 is slow on purpose)."""
    host = f"{HOST}:{port}"
    connections = await open_connections(HOST, port, 8)
    admin = await call(
        connections[0],
        json_request(
            "POST", "/api/v1/auth/login", host, {"email": "admin@bench.example.com", "password": PASSWORD}
        ),
        200,
    )
    traders = [Trader(email=f"trader{i}-{tag}@bench.example.com") for i in range(count)]

    async def worker(connection: HttpConnection, mine: list[Trader]) -> None:
        for trader in mine:
            credentials = {"email": trader.email, "password": PASSWORD}
            registered = await call(
                connection, json_request("POST", "/api/v1/auth/register", host, credentials), 201
            )
            trader.user_id = registered["userId"]
            login = await call(connection, json_request("POST", "/api/v1/auth/login", host, credentials), 200)
            trader.token = login["accessToken"]
            for asset, amount in CREDIT.items():
                credit = {"userId": trader.user_id, "asset": asset, "amount": amount, "reason": "benchmark funds",
                          "creditId": f"bench-{tag}-{trader.user_id}-{asset}"}  # fmt: skip
                await call(
                    connection,
                    json_request("POST", "/api/v1/admin/credits", host, credit, admin["accessToken"]),
                    201,
                )

    await asyncio.gather(*(worker(c, traders[i :: len(connections)]) for i, c in enumerate(connections)))
    for connection in connections:
        connection.close()
    for index, trader in enumerate(traders):
        trader.prepare(host, index)
    return traders


# ---------------------------------------------------------------------------- one backend


@dataclass(slots=True)
class ReadPhase:
    name: str
    clients: int
    wall_s: float
    stats: Stats
    cpu: dict[str, float]


@dataclass(slots=True)
class BackendResult:
    backend: str
    orders: list[OrderPhase] = field(default_factory=list)
    reads: list[ReadPhase] = field(default_factory=list)
    book_levels: tuple[int, int] = (0, 0)
    note: str = ""


class Profiler:
    """py-spy on the server worker during one phase (if py-spy is installed): samples of the
    thread holding the GIL only (``--gil``), in py-spy's raw collapsed-stack format, which
    ``summarize_profile`` reads and flamegraph tools render."""

    def __init__(self, directory: Path | None, name: str) -> None:
        self.directory = directory
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, pid: int, duration_s: float) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if self.directory is None or not Path(spy).exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        base = self.directory / self.name
        self.process = subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(duration_s))), "--rate", "200",
             "--threads", "--gil", "--format", "raw", "--output", f"{base}.txt", "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


# Where GIL time goes: a sample counts for the first category with a marker in its stack
# (thread name or frame text), or for a leaf-only category when its innermost frame matches.
# Order matters: JWT work happens inside a guard inside Litestar inside the metrics middleware.
PROFILE_CATEGORIES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("store write (engine writer thread)", ("cambist-writer",), False),
    ("store reads (read pool: cancel answers)", ("cambist-read",), False),
    ("JWT decode (PyJWT, per request)", ("(jwt/",), False),
    ("session lookup (cache miss: SQL on the event loop)", ("AccountService._session_state",), False),
    ("core apply + depth snapshot (engine)", ("Engine._apply (", "Engine._process ("), False),
    ("publish after commit (hub, metrics)", ("Engine._publish (",), False),
    ("prometheus metrics (middleware)", ("prometheus_client/", "metrics_middleware"), True),
    ("route handlers (orders.py, presenters)", ("cambist/api/routes/", "cambist/api/presenters"), False),
    ("strict body guard (second JSON decode)", ("strict_body_guard",), False),
    ("Litestar (routing, DI, guards, parsing, responses)", ("litestar/",), False),
)


def summarize_profile(path: Path, top: int = 20) -> list[str]:
    """Read py-spy's raw (collapsed) stacks: share per thread and per category, top self time."""
    if not path.exists():
        return [f"no profile at {path} (is py-spy installed and allowed to ptrace?)"]
    per_thread: dict[str, int] = {}
    per_category: dict[str, int] = {}
    self_time: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1].rstrip("0123456789_")
        per_thread[thread] = per_thread.get(thread, 0) + count
        total += count
        leaf = frames[-1]
        category = next(
            (
                name
                for name, markers, leaf_only in PROFILE_CATEGORIES
                if any(m in (leaf if leaf_only else stack) for m in markers)
            ),
            "other (granian I/O, asyncio, ...)",
        )
        per_category[category] = per_category.get(category, 0) + count
        if len(frames) > 1:
            leaf = _frame_name(frames[-1])
            self_time[leaf] = self_time.get(leaf, 0) + count
    if not total:
        return [f"empty profile at {path}"]

    def share(items: dict[str, int], limit: int | None = None) -> list[tuple[str, float]]:
        ranked = sorted(items.items(), key=lambda item: -item[1])[:limit]
        return [(name, 100 * count / total) for name, count in ranked]

    threads = ", ".join(f"{name} {pct:.0f}%" for name, pct in share(per_thread))
    lines = [
        f"profile {path.name}: {total} samples of the GIL holder; by thread: {threads}",
        "  by category:",
    ]
    lines.extend(f"    {pct:5.1f}%  {name}" for name, pct in share(per_category))
    lines.append("  top self time:")
    lines.extend(f"    {pct:5.1f}%  {name}" for name, pct in share(self_time, top))
    return lines


def _frame_name(frame: str) -> str:
    """``func (pkg/mod.py:123)`` -> ``func (pkg/mod.py)``: the lines of one function merged."""
    name, _, location = frame.partition(" (")
    file = location.rsplit(":", 1)[0].rstrip(")")
    return f"{name} ({file})" if file else name


async def bench_backend(
    backend: str, database_url: str, data_dir: Path, args: argparse.Namespace
) -> BackendResult:
    result = BackendResult(backend)
    with running_server(data_dir, database_url, args) as (port, server, log_path):
        await wait_ready(port, server, log_path)
        server_pids = [server.pid, *children(server.pid)]
        host = f"{HOST}:{port}"
        print(
            f"[{backend}] server ready on port {port} (pids {server_pids}); setting up {args.clients} traders"
        )
        traders = await setup_traders(port, args.clients, secrets.token_hex(3))
        connections = await open_connections(HOST, port, args.clients)
        probe = await HttpConnection.open(HOST, port)  # for /metrics, outside the load
        meter = CpuMeter(server_pids, database_url.rsplit("/", 1)[1] if backend == "postgres" else None)

        print(f"[{backend}] warm-up {args.warmup:.0f} s at {args.clients} clients")
        await run_orders(connections, traders, args.warmup)

        for clients in (1, args.clients):
            print(f"[{backend}] orders: {clients} client(s) for {args.seconds:.0f} s")
            profiler = Profiler(args.profile, f"{backend}-orders-{clients}")
            counters = await engine_counters(probe, host)
            before = meter.sample()
            profiler.start(meter.worker, args.seconds)
            phase = await run_orders(connections[:clients], traders[:clients], args.seconds)
            after = meter.sample()
            profiler.stop()
            phase.engine = engine_summary(counters, await engine_counters(probe, host))
            phase.cpu, phase.server_threads = CpuMeter.percent(before, after)
            result.orders.append(phase)

        book = await call(
            connections[0], build_request("GET", f"/api/v1/orderbook/{SYMBOL}?depth=1000", host), 200
        )
        result.book_levels = (len(book["bids"]), len(book["asks"]))
        for name, path in (
            ("ticker", f"/api/v1/ticker/{SYMBOL}"),
            ("orderbook", f"/api/v1/orderbook/{SYMBOL}?depth=20"),
        ):
            request = build_request("GET", path, host)
            await run_closed_loop(connections, always(request), 200, min(1.0, args.warmup))
            print(f"[{backend}] GET {name}: {args.clients} clients for {args.read_seconds:.0f} s")
            profiler = Profiler(args.profile, f"{backend}-get-{name}-{args.clients}")
            before = meter.sample()
            profiler.start(meter.worker, args.read_seconds)
            stats, wall_s = await run_closed_loop(connections, always(request), 200, args.read_seconds)
            cpu, _ = CpuMeter.percent(before, meter.sample())
            profiler.stop()
            result.reads.append(ReadPhase(name, args.clients, wall_s, stats, cpu))
        probe.close()
        for connection in connections:
            connection.close()
    return result


ENGINE_METRICS = (
    "cambist_engine_batch_size_sum",
    "cambist_engine_batch_size_count",
    "cambist_engine_commit_seconds_sum",
)


async def engine_counters(connection: HttpConnection, host: str) -> dict[str, float]:
    """The engine's batch and commit counters from the Prometheus metrics."""
    status, body = await connection.request(build_request("GET", "/metrics", host))
    values = dict.fromkeys(ENGINE_METRICS, 0.0)
    if status == 200:
        for line in body.decode().splitlines():
            name, _, value = line.partition(" ")
            if name in values:
                values[name] = float(value)
    return values


def engine_summary(before: dict[str, float], after: dict[str, float]) -> str:
    batches = after["cambist_engine_batch_size_count"] - before["cambist_engine_batch_size_count"]
    if not batches:
        return "no engine metrics"
    size = (after["cambist_engine_batch_size_sum"] - before["cambist_engine_batch_size_sum"]) / batches
    commit_s = after["cambist_engine_commit_seconds_sum"] - before["cambist_engine_commit_seconds_sum"]
    return (
        f"{batches:,.0f} batches, {size:.1f} commands/batch, commit {1000 * commit_s / batches:.2f} ms mean"
    )


# ---------------------------------------------------------------------------- backends


@contextlib.contextmanager
def sqlite_backend() -> Iterator[tuple[str, Path]]:
    with tempfile.TemporaryDirectory(prefix="cambist-bench-") as tmp:
        data_dir = Path(tmp)
        yield f"sqlite:///{data_dir / 'cambist.db'}", data_dir


@contextlib.contextmanager
def postgres_backend(admin_url: str, relaxed: bool) -> Iterator[tuple[str, Path] | None]:
    import psycopg
    from psycopg import sql

    name = f"cambist_bench_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        print(f"[postgres] skipped: cannot connect to {admin_url}: {str(error).strip().splitlines()[0]}")
        yield None
        return
    with admin, tempfile.TemporaryDirectory(prefix="cambist-bench-") as tmp:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        if relaxed:  # commit without waiting for the WAL flush: for attribution only
            admin.execute(
                sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(sql.Identifier(name))
            )
        try:
            base = admin_url.rsplit("/", 1)[0]
            yield f"{base}/{name}", Path(tmp)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# ---------------------------------------------------------------------------- report


def git_revision() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' with uncommitted changes in src/' if dirty else ''}"


def machine_info(
    loop_name: str, load: tuple[float, float, float], switch_ms: float | None, relaxed: bool
) -> list[str]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.1f} GiB RAM"
    lines = [
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs ({cpu_model or platform.processor()}){mem}",
        f"python: {platform.python_implementation()} {platform.python_version()}, client loop {loop_name}, "
        f"load average at the start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"code: cambist {git_revision()}",
    ]
    if switch_ms is not None:
        lines.append(f"EXPERIMENT --switch-interval-ms: server GIL switch interval {switch_ms} ms")
    if relaxed:
        lines.append("EXPERIMENT --relaxed-durability: commits do not wait for fsync; not durable figures")
    return lines


def _errors(*stats: Stats) -> str:
    merged: dict[str, int] = {}
    for s in stats:
        for key, count in s.errors.items():
            merged[key] = merged.get(key, 0) + count
    return ", ".join(f"{k}x{v}" for k, v in sorted(merged.items())) or "none"


def report(
    results: list[BackendResult], args: argparse.Namespace, loop_name: str, load: tuple[float, float, float]
) -> None:
    print()
    for line in machine_info(loop_name, load, args.switch_interval_ms, args.relaxed_durability):
        print(line)
    print(
        f"mix: limit orders on {SYMBOL} around 30000.00, {CROSSING_SHARE:.0%} crossing "
        f"(half IOC), the rest resting 1-{RESTING_STEPS_MAX} steps of 0.50 away; cancels of own "
        f"open orders ({CANCEL_SHARE:.0%} of actions, always when {OPEN_ORDERS_MAX} are open); "
        f"seed {SEED}; {args.seconds:.0f} s per phase after {args.warmup:.0f} s warm-up"
    )
    print()
    head = (f"{'backend':<9}{'clients':>8}{'orders/s':>10}{'cancels/s':>10}{'p50 ms':>8}{'p90 ms':>8}"
            f"{'p99 ms':>8}{'cancel p50':>11}  {'CPU% srv/cli/pg':<17}{'us/cmd srv/pg':<15}errors by status")  # fmt: skip
    kind = "NOT durable (--relaxed-durability)" if args.relaxed_durability else "durable"
    print(f"{kind} orders over HTTP (POST /api/v1/orders answered 201 after commit)")
    print(head)
    print("-" * len(head))
    for result in results:
        for phase in result.orders:
            latencies = sorted(phase.places.latencies_ns)
            cpu = phase.cpu
            commands_per_s = (phase.places.ok + phase.cancels.ok) / phase.wall_s

            def per_cmd(percent: float, rate: float = commands_per_s) -> float:
                return 1e4 * percent / rate if rate else float("nan")  # CPU us per command

            print(
                f"{result.backend:<9}{phase.clients:>8}{phase.places.ok / phase.wall_s:>10,.0f}"
                f"{phase.cancels.ok / phase.wall_s:>10,.0f}"
                f"{percentile_ms(latencies, 0.50):>8.2f}{percentile_ms(latencies, 0.90):>8.2f}"
                f"{percentile_ms(latencies, 0.99):>8.2f}{phase.cancels.percentile_ms(0.5):>11.2f}  "
                f"{cpu['server']:>4.0f}/{cpu['client']:>3.0f}/{cpu['postgres']:>3.0f}       "
                f"{per_cmd(cpu['server']):>5.0f}/{per_cmd(cpu['postgres']):<5.0f}    "
                f"{_errors(phase.places, phase.cancels)}"
            )
    print()
    print(f"market data reads ({args.read_seconds:.0f} s each, book left by the order phases)")
    head = f"{'backend':<9}{'request':<32}{'clients':>8}{'req/s':>10}{'p50 ms':>8}{'p99 ms':>8}  {'CPU% srv/cli':<13} errors"
    print(head)
    print("-" * len(head))
    for result in results:
        for read in result.reads:
            path = f"GET {read.name}" + (" depth=20" if read.name == "orderbook" else "")
            print(
                f"{result.backend:<9}{path:<32}{read.clients:>8}{read.stats.ok / read.wall_s:>10,.0f}"
                f"{read.stats.percentile_ms(0.5):>8.2f}{read.stats.percentile_ms(0.99):>8.2f}  "
                f"{read.cpu['server']:>4.0f}/{read.cpu['client']:>3.0f}      {_errors(read.stats)}"
            )
    print()
    for result in results:
        print(f"{result.backend}: book after the order phases: {result.book_levels[0]} bid / "
              f"{result.book_levels[1]} ask levels")  # fmt: skip
        for phase in result.orders:
            threads = ", ".join(f"{name} {pct:.0f}%" for name, pct in phase.server_threads)
            print(f"{result.backend} at {phase.clients} client(s): engine {phase.engine}; "
                  f"server threads (% of one core): {threads}")  # fmt: skip


# ---------------------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> list[BackendResult]:
    results = []
    if args.backend in ("sqlite", "both"):
        with sqlite_backend() as (url, data_dir):
            results.append(await bench_backend("sqlite", url, data_dir, args))
    if args.backend in ("postgres", "both"):
        with postgres_backend(args.pg_url, args.relaxed_durability) as backend:
            if backend is not None:
                url, data_dir = backend
                results.append(await bench_backend("postgres", url, data_dir, args))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="short phases (3 s), for a smoke run")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per order phase (default 10)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CAMBIST_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL database to connect to for CREATE/DROP DATABASE",
    )
    parser.add_argument(
        "--relaxed-durability",
        action="store_true",
        help="experiment: no fsync per commit (SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off); "
        "answers are then NOT durable against power loss, so never quote these as durable figures",
    )
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=None,
        help="experiment: run the server with sys.setswitchinterval(MS/1000) (Python's default is 5 ms)",
    )
    parser.add_argument("--profile", type=Path, default=None, help="py-spy each order phase into DIR")
    args = parser.parse_args()
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    args.read_seconds = 2.0 if args.quick else 5.0
    args.warmup = 1.0 if args.quick else 3.0
    load = os.getloadavg()
    loop_name = install_uvloop()
    results = asyncio.run(run(args))
    report(results, args, loop_name, load)
    if args.profile is not None:
        for result in results:
            print()
            names = [f"{result.backend}-orders-{phase.clients}" for phase in result.orders]
            names += [f"{result.backend}-get-{read.name}-{read.clients}" for read in result.reads]
            for name in names:
                print("\n".join(summarize_profile(args.profile / f"{name}.txt")))


if __name__ == "__main__":
    main()
