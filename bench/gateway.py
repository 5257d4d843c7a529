"""Cycle-request throughput through the gateway against a bare Flask route.

Both apps run under gunicorn with the same settings (gthread workers), each as
a child process; a pool of HTTP clients sends a bounded number of requests in
bounded time after a warm-up. The model store and the cycle manager run in
this process on the real PostgreSQL and Redis. The job's max_workers is sized
so that every measured request is admitted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import redis
import requests
import torch
from flask import Flask, Response, jsonify

from fedgrid import db
from fedgrid.config import Settings
from fedgrid.grpcserver import wait_until_serving
from fedgrid.job import JobSpec
from fedgrid.plans.examples import DigitsMLP, sgd_training_step
from fedgrid_cycle_manager.service import CycleManagerReplica
from fedgrid_gateway.__main__ import GatewayServer, gunicorn_options
from fedgrid_model_store.server import build_server

POSTGRES = os.environ.get(
    "FEDGRID_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FEDGRID_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
API = "/api/v1"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_bare(port: int, workers: int, threads: int) -> None:
    """Child mode: a bare Flask route under the gateway's gunicorn settings."""
    app = Flask("bare")

    @app.post("/api/v1/cycle-request")
    def bare() -> Response:
        return jsonify({"status": "accepted"})

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    settings = Settings(
        gateway_port=port, gateway_workers=workers, gateway_threads=threads
    )
    options = gunicorn_options(settings)
    options["loglevel"] = "warning"
    GatewayServer(app, options).run()


def _start(
    command: list[str], env: dict[str, str], url: str
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return proc
        except requests.RequestException:
            time.sleep(0.1)
    _stop(proc)
    raise RuntimeError(f"{command} did not come up at {url}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _host_job(url: str, admin_token: str, seats: int) -> str:
    """Push a small job (the plans example MLP) through the admin route."""
    torch.manual_seed(0)
    job = JobSpec(
        name=f"bench-{uuid.uuid4().hex[:8]}",
        version="1.0.0",
        model=DigitsMLP(),
        training_plan=sgd_training_step,
        example_inputs={
            "data": torch.randn(8, 64),
            "target": torch.randint(0, 10, (8,)),
            "lr": torch.tensor(0.05),
        },
        client_config={"lr": 0.05},
        server_config={
            "pool_selection": "iterate",
            "max_workers": seats,
            "cycle_length": 3600,
        },
    )
    reply = requests.post(
        f"{url}{API}/admin/jobs",
        data=b"".join(job.trace().host_body()),
        headers={
            "Authorization": f"Bearer {admin_token}",
            "Content-Type": "application/x-protobuf",
        },
        timeout=60,
    )
    reply.raise_for_status()
    return str(reply.json()["name"])


def _sessions(url: str, job: str, count: int, clients: int) -> list[str]:
    def one(_: int) -> str:
        reply = requests.post(f"{url}{API}/auth", json={"job": job}, timeout=30)
        reply.raise_for_status()
        return str(reply.json()["session_token"])

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(count)))


def _measure(
    url: str, tokens: list[str], clients: int, time_limit: float
) -> tuple[float, int, dict[str, int]]:
    """Requests per second over the tokens (one request each), and outcomes."""
    local = threading.local()
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + time_limit

    def one(token: str) -> None:
        if time.monotonic() > stop_at:
            return
        session: requests.Session | None = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        reply = session.post(
            f"{url}{API}/cycle-request",
            json={},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        status = str(reply.json().get("status", reply.status_code))
        with lock:
            outcomes[status] = outcomes.get(status, 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, tokens))
    elapsed = time.perf_counter() - started
    done = sum(outcomes.values())
    return done / elapsed, done, outcomes


def run(requests_count: int, clients: int, workers: int, threads: int) -> None:
    name = f"fedgrid_bench_{uuid.uuid4().hex[:10]}"
    database_url = POSTGRES.rsplit("/", 1)[0] + "/" + name
    prefix = f"fedgrid-bench:{uuid.uuid4().hex[:10]}:"
    var = Path(f"/tmp/{name}")
    settings = Settings(
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        database_url=database_url,
        object_store_path=var / "objects",
        aggregation_queue=f"{prefix}aggregation",
        admin_token=uuid.uuid4().hex,
        session_secret=uuid.uuid4().hex,
        var_dir=var,
    )
    db.migrate(database_url)
    store_server = build_server(settings, bind=f"127.0.0.1:{free_port()}")
    store_server.start()
    replica = CycleManagerReplica(settings, port=free_port())
    replica.start()
    children: list[subprocess.Popen[bytes]] = []
    try:
        wait_until_serving(store_server.service.address)
        wait_until_serving(replica.address)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDGRID_")}
        gateway_port, bare_port = free_port(), free_port()
        env.update(
            {
                "FEDGRID_REDIS_URL": settings.redis_url,
                "FEDGRID_REDIS_PREFIX": prefix,
                "FEDGRID_DATABASE_URL": database_url,
                "FEDGRID_OBJECT_STORE_PATH": str(settings.object_store_path),
                "FEDGRID_ADMIN_TOKEN": settings.admin_token,
                "FEDGRID_SESSION_SECRET": settings.session_secret,
                "FEDGRID_MODEL_STORE_ADDRESS": store_server.service.address,
                "FEDGRID_CYCLE_MANAGER_ADDRESS": replica.address,
                "FEDGRID_GATEWAY_PORT": str(gateway_port),
                "FEDGRID_GATEWAY_WORKERS": str(workers),
                "FEDGRID_GATEWAY_THREADS": str(threads),
                "FEDGRID_GATEWAY_AUTH_PER_IP": "0",
                "FEDGRID_GATEWAY_CYCLE_REQUESTS_PER_IP": "0",
                "FEDGRID_GATEWAY_CYCLE_REQUESTS_PER_WORKER": "0",
                "FEDGRID_LOG_LEVEL": "WARNING",
            }
        )
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        bare_url = f"http://127.0.0.1:{bare_port}"
        children.append(
            _start([sys.executable, "-m", "fedgrid_gateway"], env, gateway_url)
        )
        bare_command = [
            sys.executable, __file__, "--serve-bare", str(bare_port),
            "--workers", str(workers), "--threads", str(threads),
        ]  # fmt: skip
        children.append(_start(bare_command, env, bare_url))

        warmup = max(50, requests_count // 10)
        seats = (warmup + requests_count) * 2
        job = _host_job(gateway_url, settings.admin_token, seats)
        tokens = _sessions(gateway_url, job, warmup + requests_count, clients)

        # Warm both servers, then measure each over the same number of requests.
        _measure(gateway_url, tokens[:warmup], clients, 60)
        _measure(bare_url, tokens[:warmup], clients, 60)
        gateway_rps, done, outcomes = _measure(
            gateway_url, tokens[warmup:], clients, 60
        )
        bare_rps, bare_done, _ = _measure(bare_url, tokens[warmup:], clients, 60)
        admitted = outcomes.get("accepted", 0)

        print(
            f"requests={done} bare_requests={bare_done} clients={clients} "
            f"gunicorn_workers={workers} threads={threads} max_workers={seats} "
            f"admitted={admitted} outcomes={outcomes} bare_rps={bare_rps:.0f}"
        )
        print(
            f"cycle_request_vs_bare={gateway_rps / bare_rps:.3f} rps={gateway_rps:.0f}"
        )
    finally:
        for child in children:
            _stop(child)
        replica.stop(grace=1.0)
        store_server.stop(grace=1.0)
        _cleanup(database_url, name, prefix)


def _cleanup(database_url: str, name: str, prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.delete(f"_kombu.binding.{prefix}aggregation")
    client.close()
    conn = psycopg2.connect(POSTGRES)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--serve-bare", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare, args.workers, args.threads)
        return
    run(args.requests, args.clients, args.workers, args.threads)


if __name__ == "__main__":
    main()
