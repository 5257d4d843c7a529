"""Admission throughput: concurrent RequestCycle calls against one cycle manager."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import redis

from fedgrid import db
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.grpcserver import wait_until_serving

POSTGRES = os.environ.get(
    "FEDGRID_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FEDGRID_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server and wait; kill it if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def _fire(
    clients: list[CycleManagerClient], job: str, workers: list[str], threads: int
) -> tuple[int, list[float], float]:
    def one(n: int) -> tuple[bool, float]:
        started = time.perf_counter()
        response = clients[n % len(clients)].request_cycle(job, workers[n])
        return response.HasField("accepted"), time.perf_counter() - started

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(one, range(len(workers))))
    elapsed = time.perf_counter() - began
    admitted = sum(ok for ok, _ in results)
    return admitted, sorted(latency for _, latency in results), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--max-workers", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args()

    name = f"fedgrid_bench_{uuid.uuid4().hex[:12]}"
    database_url = POSTGRES.rsplit("/", 1)[0] + "/" + name
    prefix = f"fedgrid-bench:{uuid.uuid4().hex[:12]}:"
    queue = f"{prefix}aggregation"
    port = free_port()
    db.migrate(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDGRID")}
    env.update(
        FEDGRID_REDIS_URL=REDIS_URL,
        FEDGRID_REDIS_PREFIX=prefix,
        FEDGRID_DATABASE_URL=database_url,
        FEDGRID_AGGREGATION_QUEUE=queue,
        FEDGRID_CYCLE_MANAGER_PORT=str(port),
        FEDGRID_CYCLE_MANAGER_METRICS_PORT=str(free_port()),
        FEDGRID_LOG_LEVEL="WARNING",
    )
    server = subprocess.Popen([sys.executable, "-m", "fedgrid_cycle_manager"], env=env)
    clients: list[CycleManagerClient] = []
    try:
        address = f"127.0.0.1:{port}"
        wait_until_serving(address, timeout=60)
        clients = [CycleManagerClient(address, timeout=60) for _ in range(4)]
        config = {"pool_selection": "iterate", "cycle_length": 3600}

        warm = f"warmup-{uuid.uuid4().hex[:8]}"
        warm_config = {**config, "max_workers": max(args.warmup // 2, 1)}
        clients[0].register_job(warm, "bench", "1.0.0", json.dumps(warm_config), 1)
        warm_workers = [f"warm-{n}" for n in range(args.warmup)]
        _fire(clients, warm, warm_workers, args.threads)

        job = f"bench-{uuid.uuid4().hex[:8]}"
        job_config = {**config, "max_workers": args.max_workers}
        clients[0].register_job(job, "bench", "1.0.0", json.dumps(job_config), 1)
        workers = [f"worker-{n}" for n in range(args.requests)]
        admitted, latencies, elapsed = _fire(clients, job, workers, args.threads)
    finally:
        for client in clients:
            client.close()
        stop_process(server)
        live = redis.Redis.from_url(REDIS_URL)
        keys = list(live.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            live.delete(*keys)
        live.delete(f"_kombu.binding.{queue}")
        live.close()
        conn = psycopg2.connect(POSTGRES)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()

    rps = len(latencies) / elapsed
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000
    print(
        f"requests={args.requests} max_workers={args.max_workers} "
        f"threads={args.threads} warmup={args.warmup} server=child-process"
    )
    print(
        f"admitted={admitted} max_workers={args.max_workers} "
        f"rps={rps:.0f} p99_ms={p99:.1f}"
    )
    if admitted != args.max_workers:
        raise SystemExit(f"admitted {admitted}, expected {args.max_workers}")


if __name__ == "__main__":
    main()
