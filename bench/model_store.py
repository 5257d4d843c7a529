"""Streaming a large checkpoint through the model store versus copying the file."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import torch

from fedgrid import db
from fedgrid.grpcserver import wait_until_serving
from fedgrid.modelstore.client import ModelStoreClient
from fedgrid.tensors import encode_state_stream, state_stream_bytes
from fedgrid.v1 import model_store_pb2 as pb

POSTGRES = os.environ.get(
    "FEDGRID_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CHUNK = 1024 * 1024
TENSOR_BYTES = 16 * CHUNK


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_state(path: Path, size_mb: int) -> int:
    """Write a state stream of about size_mb MiB, 16 MiB tensors; return bytes."""
    remaining = size_mb * CHUNK
    with path.open("wb") as out:
        index = 0
        while remaining > 0:
            elements = min(TENSOR_BYTES, remaining) // 4
            tensor = torch.full((elements,), float(index), dtype=torch.float32)
            for piece in encode_state_stream([(f"layer{index}", tensor)], CHUNK):
                out.write(piece)
            remaining -= elements * 4
            index += 1
    return path.stat().st_size


def read_chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes in 1 MiB chunks."""
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found")


def round_trip(
    client: ModelStoreClient, job_id: str, name: str, source: Path, target: Path
) -> float:
    """Stream source in as a checkpoint, then out to target; return seconds."""
    started = time.perf_counter()
    stored = client.create_checkpoint(
        job_id, f"cycle-{uuid.uuid4().hex}", read_chunks(source)
    )
    checkpoint, data = client.open_checkpoint(name, number=stored.number)
    with target.open("wb") as out:
        for chunk in data:  # the client checks the digest as it goes
            out.write(chunk)
    elapsed = time.perf_counter() - started
    if (
        target.stat().st_size != source.stat().st_size
        or checkpoint.number != stored.number
    ):
        raise RuntimeError("the checkpoint did not come back whole")
    return elapsed


def copy_twice(source: Path, workdir: Path) -> float:
    """Copy source to a file and that file to another (in and out); return seconds."""
    first, second = workdir / "copy-in.bin", workdir / "copy-out.bin"
    started = time.perf_counter()
    shutil.copyfile(source, first)
    shutil.copyfile(first, second)
    elapsed = time.perf_counter() - started
    first.unlink()
    second.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024, help="checkpoint size")
    args = parser.parse_args()
    small_mb = max(args.size_mb // 8, 8)

    workdir = Path(tempfile.mkdtemp(prefix="fedgrid-bench-model-store-"))
    database = f"fedgrid_bench_{uuid.uuid4().hex[:12]}"
    database_url = POSTGRES.rsplit("/", 1)[0] + "/" + database
    proc: subprocess.Popen[bytes] | None = None
    try:
        db.migrate(database_url)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDGRID_")}
        env.update(
            FEDGRID_HOST="127.0.0.1",
            FEDGRID_DATABASE_URL=database_url,
            FEDGRID_OBJECT_STORE_PATH=str(workdir / "objects"),
            FEDGRID_MODEL_STORE_PORT=str(port),
            FEDGRID_MODEL_STORE_METRICS_PORT=str(free_port()),
            FEDGRID_LOG_LEVEL="WARNING",
        )
        proc = subprocess.Popen([sys.executable, "-m", "fedgrid_model_store"], env=env)
        address = f"127.0.0.1:{port}"
        wait_until_serving(address, timeout=120)

        warm, small, big = (
            workdir / "warm.bin",
            workdir / "small.bin",
            workdir / "big.bin",
        )
        write_state(warm, 8)
        write_state(small, small_mb)
        size = write_state(big, args.size_mb)
        with ModelStoreClient(address, chunk_bytes=CHUNK) as client:
            tiny = state_stream_bytes({"w": torch.zeros(4)})
            job = client.host_job(
                pb.HostJobHeader(name="bench-model", version="1.0.0"),
                [(pb.BlobRef(kind=pb.BlobRef.MODEL), [tiny])],
            )
            # Warm-up: both paths once on a small file.
            round_trip(client, job.id, job.name, warm, workdir / "out.bin")
            copy_twice(warm, workdir)

            round_trip(client, job.id, job.name, small, workdir / "out.bin")
            small_rss = peak_rss_mb(proc.pid)
            copy_seconds = copy_twice(big, workdir)
            stream_seconds = round_trip(
                client, job.id, job.name, big, workdir / "out.bin"
            )
            big_rss = peak_rss_mb(proc.pid)

        print(
            f"checkpoint_bytes={size} chunk_bytes={CHUNK} tensor_bytes={TENSOR_BYTES} "
            f"stream_s={stream_seconds:.2f} copy_s={copy_seconds:.2f} "
            f"(in+out through gRPC vs two shutil.copyfile) "
            f"peak_rss_mb_after_{small_mb}mb={small_rss:.0f} "
            f"peak_rss_mb_after_{args.size_mb}mb={big_rss:.0f}"
        )
        ratio = stream_seconds / copy_seconds
        print(f"stream_vs_copy={ratio:.2f} peak_rss_mb={big_rss:.0f}")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
        conn = psycopg2.connect(POSTGRES)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.close()


if __name__ == "__main__":
    main()
