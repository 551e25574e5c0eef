"""Distributed mode against embedded: orders/s through two gateways and the engine over Redis.

Issue 3's target: orders/s through two gateways and the engine over Redis, beside the embedded
figure from the same run; distributed >= 50 % of embedded. Both modes run on PostgreSQL, each
on a fresh database ``cambist_bench_<random>`` that is dropped at the end.

  embedded     ``cambist serve --no-demo``: HTTP, engine and writer in one process.
  distributed  ``cambist engine`` + two ``cambist gateway`` processes on a random Redis
               namespace (``bench-<random>``, its keys deleted at the end); the clients are
               split half and half across the two gateways.

For each mode: ``cambist admin create-user --role admin`` with the servers' environment, then
the traders register and log in (one JWT each) and the admin credits them through
``POST /api/v1/admin/credits``. Then, with the order mix of ``http_bench.py`` (limit orders on
BTC-USDT around 30000.00: 35 % crossing, half of those IOC; the rest resting 1-40 steps away;
cancels of the client's own open orders, 20 % of actions and always at 16 open):

  warm-up   3 s at N clients
  single    1 client, 200 sequential orders (placing waits for each answer): place p50/p99
  load      N concurrent clients (default 64) for the duration (default 20 s): acknowledged
            orders/s (201 = committed by the engine), cancels/s, place p50/p99

During the load phase it reads the CPU time of every process from /proc: the server (or the
engine and each gateway, granian's worker included), PostgreSQL (our database's backends and
its WAL writer, checkpointer and background writer), redis-server, this load client, and the
whole machine from /proc/stat, so "other" is whatever else ran on the two cores. The load
client runs on the same 2 cores as everything it measures (uvloop, pre-encoded requests, about
20 us of CPU per request; see ``load_client.py``). From those figures it prints a one-line
"bounded by" hint.

    .venv/bin/python bench/distributed.py [--duration 20] [--clients 64]
        [--pg-url postgresql://postgres@127.0.0.1:5432/postgres] [--redis-url redis://127.0.0.1:6379/0]

Measurements, printed; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
TESTS_DIR = BENCH_DIR.parent / "tests"

from http_bench import (  # noqa: E402 (bench/ is on sys.path: this script's directory)
    CANCEL_SHARE,
    CROSSING_SHARE,
    HOST,
    OPEN_ORDERS_MAX,
    OPEN_STATUSES,
    PASSWORD,
    REQUEST_POOL,
    RESTING_STEPS_MAX,
    SEED,
    SYMBOL,
    OrderPhase,
    Trader,
    _decode_order,
    children,
    engine_counters,
    engine_summary,
    machine_info,
    postgres_backend,
    postgres_cpu_s,
    run_orders,
    setup_traders,
    thread_cpu_s,
)
from load_client import (  # noqa: E402
    HttpConnection,
    Stats,
    install_uvloop,
    open_connections,
    process_cpu_s,
)


def _import_test_support() -> tuple[type, type, object, object]:
    """``Cluster`` (tests/distributed/support.py) and ``ServerProcess`` (tests/e2e/support.py).

    This file is itself called ``distributed``, so tests/ goes first on the path just for these
    imports (``distributed.support`` must resolve to the tests package, not to this script).
    """
    sys.path.insert(0, str(TESTS_DIR))
    try:
        from distributed.support import Cluster
        from e2e.support import ServerProcess, cli, server_env
    finally:
        sys.path.remove(str(TESTS_DIR))
    return Cluster, ServerProcess, cli, server_env


Cluster, ServerProcess, cli, server_env = _import_test_support()

SINGLE_ORDERS = 200
WARMUP_S = 3.0
ADMIN_EMAIL = "admin@bench.example.com"
SATURATED_PCT = 85.0  # a Python process at this % of one core is taken as GIL/CPU-bound
MACHINE_FULL_PCT = 170.0  # of 200 %: both cores taken as full


# ---------------------------------------------------------------------------- CPU accounting


def machine_busy_s() -> dict[str, float]:
    """CPU seconds all cores spent not idle, and its parts: user (with nice), system, irq and
    softirq (kernel work such as loopback networking, not charged to any process), steal (the
    hypervisor ran something else on our vCPU)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:9]] + [0] * 8
    ticks = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    parts = {"user": user + nice, "system": system, "irq+softirq": irq + softirq, "steal": steal}
    return {"busy": sum(parts.values()) / ticks, **{name: v / ticks for name, v in parts.items()}}


def redis_pids() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip() == "redis-server":
                    found.append(int(entry))
    return found


def all_processes_cpu_s() -> dict[int, tuple[str, float]]:
    """(short command line, CPU seconds) of every process: to name the work that is not ours.
    A process that starts and ends within the phase is not seen (nor is it by its parent's
    cutime, which also holds the whole life of long-running children reaped then)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                args = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        words = [w for w in args.split() if not w.startswith("-")][:3]
        name = " ".join(Path(words[0]).name if i == 0 else w for i, w in enumerate(words)) if words else "?"
        found[int(entry)] = (name[:48], (int(fields[11]) + int(fields[12])) / ticks)
    return found


@dataclass(frozen=True, slots=True)
class CpuSample:
    wall_s: float
    roles_s: dict[str, float]
    postgres_s: dict[int, float]
    machine_s: dict[str, float]
    threads_s: dict[str, dict[str, float]]  # per server role: its worker's threads
    everything_s: dict[int, tuple[str, float]]


class CpuMeter:
    """CPU of each role (a list of processes) plus PostgreSQL, Redis, this client, the machine."""

    def __init__(self, roles: dict[str, list[int]], database: str) -> None:
        self.workers = {name: pids[-1] for name, pids in roles.items()}  # granian's worker: the app
        self.roles = {**roles, "redis": redis_pids()}
        self.database = database

    def sample(self) -> CpuSample:
        roles = {name: sum(process_cpu_s(p) for p in pids) for name, pids in self.roles.items()}
        roles["load client"] = process_cpu_s()
        return CpuSample(
            time.perf_counter(),
            roles,
            postgres_cpu_s(self.database),
            machine_busy_s(),
            {name: thread_cpu_s(pid) for name, pid in self.workers.items()},
            all_processes_cpu_s(),
        )

    def others(self, before: CpuSample, after: CpuSample, top: int = 4) -> list[tuple[str, float]]:
        """The busiest processes that are not ours (% of one core), merged by command line."""
        ours = {pid for pids in self.roles.values() for pid in pids} | {os.getpid()}
        ours |= set(after.postgres_s)
        wall = after.wall_s - before.wall_s
        merged: dict[str, float] = {}
        for pid, (name, spent) in after.everything_s.items():
            if pid not in ours:
                delta = spent - before.everything_s.get(pid, (name, 0.0))[1]
                merged[name] = merged.get(name, 0.0) + 100 * delta / wall
        ranked = sorted(merged.items(), key=lambda item: -item[1])[:top]
        return [(name, pct) for name, pct in ranked if pct >= 1.0]

    @staticmethod
    def percent(
        before: CpuSample, after: CpuSample
    ) -> tuple[dict[str, float], dict[str, float], dict[str, dict[str, float]]]:
        """(% of one core per role, machine busy % and its parts, % per thread of each server
        role's worker)."""
        wall = after.wall_s - before.wall_s
        cpu = {name: 100 * (spent - before.roles_s[name]) / wall for name, spent in after.roles_s.items()}
        # A backend that started during the phase spent all its CPU in it; one that ended is lost.
        pg = sum(spent - before.postgres_s.get(pid, 0.0) for pid, spent in after.postgres_s.items())
        cpu["postgres"] = 100 * pg / wall
        machine = {
            name: 100 * (spent - before.machine_s[name]) / wall for name, spent in after.machine_s.items()
        }
        threads = {}
        for role, spent_by_thread in after.threads_s.items():
            old = before.threads_s.get(role, {})
            pct = {name: 100 * (spent - old.get(name, 0.0)) / wall for name, spent in spent_by_thread.items()}
            threads[role] = {k: v for k, v in sorted(pct.items(), key=lambda i: -i[1]) if v >= 1.0}
        return cpu, machine, threads


def process_group(pid: int) -> list[int]:
    """A granian server: its main process and its worker(s); the worker last."""
    return [pid, *children(pid)]


# ---------------------------------------------------------------------------- one mode


@dataclass(slots=True)
class ModeResult:
    mode: str
    load: OrderPhase
    single: Stats = field(default_factory=Stats)
    single_wall_s: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core, load phase
    machine_pct: float = 0.0
    machine_parts: dict[str, float] = field(default_factory=dict)  # busy, user, system, ...
    threads: dict[str, dict[str, float]] = field(default_factory=dict)  # per server role
    others: list[tuple[str, float]] = field(default_factory=list)  # busiest processes not ours
    engine: str = ""
    engine_batch: tuple[float, float] = (0.0, 0.0)  # commands per batch, commit ms mean
    setup_s: float = 0.0

    @property
    def orders_per_s(self) -> float:
        return self.load.places.ok / self.load.wall_s if self.load.wall_s else 0.0

    @property
    def commands_per_s(self) -> float:
        ok = self.load.places.ok + self.load.cancels.ok
        return ok / self.load.wall_s if self.load.wall_s else 0.0


async def run_single(connection: HttpConnection, trader: Trader, count: int) -> tuple[Stats, float]:
    """One client, ``count`` orders placed one after the other (with the mix's cancels between
    them, uncounted): the place latency without queueing behind other clients."""
    stats = Stats()
    clock = time.perf_counter_ns
    rng, open_orders = trader.rng, trader.open_orders
    started_s = time.perf_counter()
    attempts = 0
    while stats.ok < count and attempts < 3 * count:
        attempts += 1
        if open_orders and (len(open_orders) >= OPEN_ORDERS_MAX or rng.random() < CANCEL_SHARE):
            data = trader.cancel_prefix + str(open_orders.popleft()).encode() + trader.cancel_suffix
            await connection.request(data)
            continue
        data = trader.orders[trader.next_order % REQUEST_POOL]
        trader.next_order += 1
        started = clock()
        status, body = await connection.request(data)
        elapsed = clock() - started
        stats.statuses[str(status)] += 1
        if status != 201:
            stats.errors[str(status)] += 1
            continue
        stats.latencies_ns.append(elapsed)
        answer = _decode_order(body)
        if answer.status in OPEN_STATUSES:
            open_orders.append(answer.orderId)
    return stats, time.perf_counter() - started_s


async def measure(
    mode: str,
    ports: list[int],
    traders_by_port: list[list[Trader]],
    meter: CpuMeter,
    metrics_port: int,
    duration_s: float,
) -> ModeResult:
    """Warm-up, single client, then the load; the traders of ``traders_by_port[i]`` talk to
    ``ports[i]``."""
    connections: list[HttpConnection] = []
    traders: list[Trader] = []
    for port, mine in zip(ports, traders_by_port, strict=True):
        connections += await open_connections(HOST, port, len(mine))
        traders += mine
    probe = await HttpConnection.open(HOST, metrics_port)  # engine metrics, outside the load
    metrics_host = f"{HOST}:{metrics_port}"

    print(f"[{mode}] warm-up {WARMUP_S:.0f} s at {len(connections)} clients")
    await run_orders(connections, traders, WARMUP_S)

    print(f"[{mode}] single client: {SINGLE_ORDERS} sequential orders")
    single, single_wall_s = await run_single(connections[0], traders[0], SINGLE_ORDERS)

    print(f"[{mode}] load: {len(connections)} clients for {duration_s:.0f} s")
    counters = await engine_counters(probe, metrics_host)
    before = meter.sample()
    load = await run_orders(connections, traders, duration_s)
    after = meter.sample()
    after_counters = await engine_counters(probe, metrics_host)
    cpu, machine, threads = CpuMeter.percent(before, after)
    batches = after_counters["cambist_engine_batch_size_count"] - counters["cambist_engine_batch_size_count"]
    batch = (0.0, 0.0)
    if batches:
        size = after_counters["cambist_engine_batch_size_sum"] - counters["cambist_engine_batch_size_sum"]
        commit = (
            after_counters["cambist_engine_commit_seconds_sum"]
            - counters["cambist_engine_commit_seconds_sum"]
        )
        batch = (size / batches, 1000 * commit / batches)
    probe.close()
    for connection in connections:
        connection.close()
    others = meter.others(before, after)
    summary = engine_summary(counters, after_counters)
    return ModeResult(
        mode, load, single, single_wall_s, cpu, machine["busy"], machine, threads, others, summary, batch
    )


def create_admin(env: dict[str, str]) -> None:
    done = cli(env, "admin", "create-user", "--email", ADMIN_EMAIL, "--password", PASSWORD, "--role", "admin")
    if done.returncode != 0:
        raise RuntimeError(f"cambist admin create-user failed: {done.stderr.strip()}")


async def bench_embedded(database_url: str, data_dir: Path, args: argparse.Namespace) -> ModeResult:
    started = time.perf_counter()
    env = server_env(data_dir, database_url)
    create_admin(env)
    server = ServerProcess(env, data_dir / "server.log")
    try:
        server.start()
        await asyncio.to_thread(server.wait_ready)
        pids = process_group(server.process.pid)
        print(f"[embedded] cambist serve ready on port {server.port} (pids {pids}); {args.clients} traders")
        traders = await setup_traders(server.port, args.clients, secrets.token_hex(3))
        meter = CpuMeter({"server": pids}, database_url.rsplit("/", 1)[1])
        setup_s = time.perf_counter() - started
        result = await measure("embedded", [server.port], [traders], meter, server.port, args.duration)
        result.setup_s = setup_s
        return result
    except BaseException:
        print(f"--- server log\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        server.kill()


async def bench_distributed(database_url: str, data_dir: Path, args: argparse.Namespace) -> ModeResult:
    started = time.perf_counter()
    namespace = f"bench-{secrets.token_hex(6)}"
    cluster = Cluster(
        data_dir, database_url, args.redis_url, gateways=2, extra_env={"CAMBIST_REDIS_NAMESPACE": namespace}
    )
    cluster.namespace = namespace
    create_admin(cluster.env)
    try:
        await asyncio.to_thread(cluster.start)
        engine_pids = process_group(cluster.engine.process.pid)
        gateway_pids = [process_group(g.process.pid) for g in cluster.gateways]
        ports = [g.port for g in cluster.gateways]
        print(
            f"[distributed] engine (pids {engine_pids}) and gateways on ports {ports} "
            f"(pids {gateway_pids}) ready, redis namespace {namespace}; {args.clients} traders"
        )
        tag = secrets.token_hex(3)
        first = (args.clients + 1) // 2
        groups = await asyncio.gather(
            setup_traders(ports[0], first, f"{tag}a"),
            setup_traders(ports[1], args.clients - first, f"{tag}b"),
        )
        for index, trader in enumerate(groups[1]):  # the same order streams as the embedded run
            trader.prepare(f"{HOST}:{ports[1]}", first + index)
        roles = {"engine": engine_pids, "gateway 1": gateway_pids[0], "gateway 2": gateway_pids[1]}
        meter = CpuMeter(roles, database_url.rsplit("/", 1)[1])
        setup_s = time.perf_counter() - started
        result = await measure("distributed", ports, list(groups), meter, cluster.engine.port, args.duration)
        result.setup_s = setup_s
        return result
    except BaseException:
        print(cluster.logs(), file=sys.stderr)
        raise
    finally:
        cluster.close()
        delete_namespace(args.redis_url, namespace)


def delete_namespace(redis_url: str, namespace: str) -> None:
    import redis

    with contextlib.suppress(redis.RedisError), redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)


@contextlib.contextmanager
def fresh_database(pg_url: str) -> Iterator[tuple[str, Path]]:
    with postgres_backend(pg_url, relaxed=False) as backend:
        if backend is None:
            raise SystemExit("PostgreSQL is required: see --pg-url")
        yield backend


def check_redis(redis_url: str) -> None:
    import redis

    try:
        with redis.Redis.from_url(redis_url, socket_connect_timeout=3) as client:
            client.ping()
    except redis.RedisError as error:
        raise SystemExit(f"Redis is required for the distributed mode: {redis_url}: {error}") from None


# ---------------------------------------------------------------------------- report


SERVER_ROLES = ("server", "engine", "gateway 1", "gateway 2")


def bounded_by(result: ModeResult) -> str:
    """A one-line reading of the CPU figures: which resource the throughput ran into.

    Two ceilings, both extrapolated linearly from this phase's CPU per command: one Python
    process reaching a full core (one GIL), and all of our processes together filling both
    cores (were nothing else running)."""
    cpu, rate = result.cpu, result.commands_per_s
    if not rate:
        return "nothing: no command succeeded"
    ours = {name: pct for name, pct in cpu.items() if pct >= 0.5}
    ours_pct = sum(ours.values())
    other = max(0.0, result.machine_pct - ours_pct)
    ours_us = 1e4 * ours_pct / rate
    busiest, busiest_pct = max(((n, p) for n, p in ours.items() if n in SERVER_ROLES), key=lambda i: i[1])
    process_ceiling = rate * 100 / busiest_pct
    machine_ceiling = rate * 200 / ours_pct
    ceilings = (
        f"{ours_us:,.0f} us of our CPU per command -> ~{machine_ceiling:,.0f} commands/s with both cores "
        f"to ourselves; {busiest} would fill one core at ~{process_ceiling:,.0f} commands/s "
        f"(measured {rate:,.0f})"
    )
    if result.machine_pct >= MACHINE_FULL_PCT:
        return (
            f"CPU of the 2 cores: the machine was {result.machine_pct:.0f}% busy of 200% "
            f"({other:.0f}% not ours); {ceilings}"
        )
    if busiest_pct >= SATURATED_PCT:
        return f"{busiest} CPU: {busiest_pct:.0f}% of one core (one GIL); {ceilings}"
    size, commit_ms = result.engine_batch
    return (
        f"waiting, not CPU (machine {result.machine_pct:.0f}% busy of 200%, no process near a core): "
        f"the engine commits {size:.1f} commands per batch in {commit_ms:.1f} ms mean (fsync); {ceilings}"
    )


def _errors(*stats: Stats) -> str:
    merged: dict[str, int] = {}
    for s in stats:
        for key, count in s.errors.items():
            merged[key] = merged.get(key, 0) + count
    return ", ".join(f"{k}x{v}" for k, v in sorted(merged.items())) or "none"


def report(results: list[ModeResult], args: argparse.Namespace, loop: str, load: tuple[float, ...]) -> None:
    print()
    for line in machine_info(loop, load, None, False):
        print(line)
    print(f"load average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(
        f"mix: limit orders on {SYMBOL} around 30000.00, {CROSSING_SHARE:.0%} crossing (half IOC), the rest "
        f"resting 1-{RESTING_STEPS_MAX} steps of 0.50 away; cancels of own open orders ({CANCEL_SHARE:.0%} "
        f"of actions, always at {OPEN_ORDERS_MAX} open); seed {SEED}; PostgreSQL, durable commits"
    )
    print(
        f"load: {args.clients} closed-loop clients for {args.duration:.0f} s after {WARMUP_S:.0f} s warm-up "
        f"(distributed: half on each gateway); single: 1 client, {SINGLE_ORDERS} sequential orders"
    )
    print()
    head = (
        f"{'mode':<13}{'clients':>8}{'orders/s':>10}{'cancels/s':>10}{'p50 ms':>8}{'p99 ms':>8}"
        f"   {'1-client p50':>12}{'p99 ms':>8}{'orders/s':>9}   errors"
    )
    print("acknowledged orders (POST /api/v1/orders answered 201 after the engine's commit)")
    print(head)
    print("-" * len(head))
    for r in results:
        load = r.load
        single_rate = r.single.ok / r.single_wall_s if r.single_wall_s else 0.0
        print(
            f"{r.mode:<13}{load.clients:>8}{r.orders_per_s:>10,.0f}{load.cancels.ok / load.wall_s:>10,.0f}"
            f"{load.places.percentile_ms(0.5):>8.2f}{load.places.percentile_ms(0.99):>8.2f}"
            f"   {r.single.percentile_ms(0.5):>12.2f}{r.single.percentile_ms(0.99):>8.2f}{single_rate:>9,.0f}"
            f"   {_errors(load.places, load.cancels, r.single)}"
        )
    if len(results) == 2 and results[0].orders_per_s:
        embedded, distributed = results
        ratio = distributed.orders_per_s / embedded.orders_per_s
        verdict = "met" if ratio >= 0.5 else "NOT met"
        print()
        print(
            f"distributed / embedded orders/s: {ratio:.0%} "
            f"({distributed.orders_per_s:,.0f} / {embedded.orders_per_s:,.0f}); target >= 50 %: {verdict}"
        )
        single = distributed.single.percentile_ms(0.5) / embedded.single.percentile_ms(0.5)
        print(f"1-client place p50, distributed / embedded: {single:.2f}x")
    print()
    roles = ["server", "engine", "gateway 1", "gateway 2", "postgres", "redis", "load client"]
    head = (
        f"{'CPU, load phase':<16}"
        + "".join(f"{name:>12}" for name in roles)
        + f"{'not ours':>10}{'machine':>9}"
    )
    print(
        "CPU during the load phase: % of one core (the machine has 2: 200 % is everything), then us per command"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        other = max(0.0, r.machine_pct - sum(r.cpu.values()))
        cells = "".join(f"{r.cpu[name]:>11.0f}%" if name in r.cpu else f"{'-':>12}" for name in roles)
        print(f"{r.mode + ' %':<16}{cells}{other:>9.0f}%{r.machine_pct:>8.0f}%")
        commands = r.commands_per_s or float("nan")
        cells = "".join(
            f"{1e4 * r.cpu[name] / commands:>12.0f}" if name in r.cpu else f"{'-':>12}" for name in roles
        )
        print(
            f"{r.mode + ' us/cmd':<16}{cells}{1e4 * other / commands:>10.0f}{1e4 * r.machine_pct / commands:>9.0f}"
        )
    print()
    for r in results:
        print(f"{r.mode}: engine {r.engine}")
        for role, by_thread in r.threads.items():
            threads = ", ".join(f"{name} {pct:.0f}%" for name, pct in by_thread.items())
            print(f"{r.mode}: {role} worker threads (% of one core): {threads}")
    for r in results:
        parts = " + ".join(f"{name} {pct:.0f}%" for name, pct in r.machine_parts.items() if name != "busy")
        print(f"{r.mode}: machine busy {r.machine_pct:.0f}% = {parts}")
    for r in results:
        others = "; ".join(f"{name} {pct:.0f}%" for name, pct in r.others) or "nothing over 1%"
        print(f"{r.mode}: not ours, busiest (% of one core): {others}")
    print()
    for r in results:
        print(f"{r.mode}: bounded by {bounded_by(r)}")
    print()
    print(
        "note: the load client, PostgreSQL and Redis share the same 2 cores with the servers ('load client' "
        "and 'not ours' above); 'not ours' is other work on the machine (noise), 'redis' is the whole "
        "redis-server, which may also serve others. us/cmd counts places and cancels as commands. "
        "Processes that started and ended within the phase count in 'not ours' but not by name."
    )


# ---------------------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> list[ModeResult]:
    results = []
    with fresh_database(args.pg_url) as (url, data_dir):
        results.append(await bench_embedded(url, data_dir, args))
    with fresh_database(args.pg_url) as (url, data_dir):
        results.append(await bench_distributed(url, data_dir, args))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per mode (default 20)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CAMBIST_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL database to connect to for CREATE/DROP DATABASE",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("CAMBIST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    if args.clients < 2:
        parser.error("--clients must be at least 2 (half on each gateway)")
    check_redis(args.redis_url)
    load = os.getloadavg()
    loop = install_uvloop()
    started = time.perf_counter()
    results = asyncio.run(run(args))
    report(results, args, loop, load)
    setup = ", ".join(f"{r.mode} setup {r.setup_s:.0f} s" for r in results)
    print(f"total {time.perf_counter() - started:.0f} s ({setup})")


if __name__ == "__main__":
    main()
