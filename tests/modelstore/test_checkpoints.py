"""Checkpoints: numbering, aliases, idempotency per cycle, integrity, streaming."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
import torch

from fedgrid.errors import DataLoss, InvalidArgument, NotFound
from fedgrid.grpcserver import MAX_MESSAGE_BYTES
from fedgrid.tensors import encode_state_stream
from fedgrid.v1 import model_store_pb2 as pb
from tests.modelstore.conftest import Stack, host, model_bytes, stored_objects
from tests.support import wait_for


def _create(
    stack: Stack,
    job: pb.Job,
    seed: int,
    cycle_id: str = "",
    aliases: tuple[str, ...] = (),
    metrics: dict[str, float] | None = None,
) -> pb.Checkpoint:
    return stack.client.create_checkpoint(
        job.id,
        cycle_id or f"cycle-{uuid.uuid4().hex}",
        [model_bytes(seed)],
        metrics=metrics,
        aliases=aliases,
    )


def test_next_checkpoints_move_latest_and_take_aliases(
    stack: Stack, job_name: str
) -> None:
    job = host(stack.client, job_name)

    second = _create(stack, job, seed=2, aliases=("best",), metrics={"loss": 0.5})
    third = _create(stack, job, seed=3)

    assert (second.number, third.number) == (2, 3)
    assert second.metrics == {"loss": 0.5}
    latest, data = stack.client.open_checkpoint(job_name)
    assert latest.number == 3
    assert b"".join(data) == model_bytes(3)
    best, data = stack.client.open_checkpoint(job_name, alias="best")
    assert best.number == 2
    assert b"".join(data) == model_bytes(2)
    first, data = stack.client.open_checkpoint(job_name, "1.0.0", number=1)
    assert (first.number, b"".join(data)) == (1, model_bytes(0))
    listed = stack.client.list_checkpoints(job_name)
    assert [(c.number, list(c.aliases)) for c in listed] == [
        (1, []),
        (2, ["best"]),
        (3, ["latest"]),
    ]
    assert stack.client.get_job(job_name).latest_checkpoint == 3


def test_set_alias_moves_an_alias(stack: Stack, job_name: str) -> None:
    job = host(stack.client, job_name)
    _create(stack, job, seed=2)

    moved = stack.client.set_alias(job_name, "", 1, "production")
    again = stack.client.set_alias(job_name, "1.0.0", 2, "production")

    assert moved.number == 1
    assert (again.number, list(again.aliases)) == (2, ["latest", "production"])
    with pytest.raises(NotFound, match="no checkpoint 9"):
        stack.client.set_alias(job_name, "", 9, "production")
    with pytest.raises(InvalidArgument, match="alias '7'"):
        stack.client.set_alias(job_name, "", 1, "7")
    with pytest.raises(InvalidArgument, match="'latest' always names the newest"):
        stack.client.set_alias(job_name, "", 1, "latest")
    assert stack.client.get_job(job_name).latest_checkpoint == 2


def test_repeated_cycle_returns_the_checkpoint_already_made(
    stack: Stack, job_name: str
) -> None:
    job = host(stack.client, job_name)

    first = _create(stack, job, seed=2, cycle_id="cycle-a")
    retried = _create(stack, job, seed=99, cycle_id="cycle-a")

    assert retried == first
    assert retried.cycle_id == "cycle-a"
    assert [c.number for c in stack.client.list_checkpoints(job_name)] == [1, 2]
    _, data = stack.client.open_checkpoint(job_name)
    assert b"".join(data) == model_bytes(2)


def test_concurrent_calls_for_one_cycle_make_one_checkpoint(
    stack: Stack, job_name: str
) -> None:
    job = host(stack.client, job_name)
    barrier = threading.Barrier(3)
    results: list[pb.Checkpoint] = []
    errors: list[BaseException] = []

    def model(seed: int) -> Iterator[bytes]:
        barrier.wait(timeout=10)  # both streams are open before either sends data
        yield model_bytes(seed)

    def aggregate(seed: int) -> None:
        try:
            checkpoint = stack.client.create_checkpoint(job.id, "cycle-x", model(seed))
            results.append(checkpoint)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=aggregate, args=(s,)) for s in (5, 6)]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=10)
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(results) == 2 and results[0] == results[1]
    assert [c.number for c in stack.client.list_checkpoints(job_name)] == [1, 2]
    assert len(_checkpoint_objects(stack, job.id)) == 2


def test_server_state_is_stored_with_its_checkpoint(
    stack: Stack, job_name: str
) -> None:
    job = host(stack.client, job_name)
    moments = b"".join(encode_state_stream({"m": torch.zeros(3, 3)}))

    stored = stack.client.create_checkpoint(
        job.id, "cycle-s", [model_bytes(2)], server_state_chunks=[moments]
    )
    checkpoint, data = stack.client.get_server_state(job_name, number=stored.number)

    assert checkpoint.number == 2
    assert b"".join(data) == moments
    with pytest.raises(NotFound, match="no server state"):
        stack.client.get_server_state(job_name, number=1)


def test_checkpoint_refusals(stack: Stack, job_name: str) -> None:
    job = host(stack.client, job_name)
    client = stack.client

    with pytest.raises(NotFound, match="no job has id"):
        client.create_checkpoint(str(uuid.uuid4()), "c1", [model_bytes(1)])
    with pytest.raises(InvalidArgument, match="cycle id is empty"):
        client.create_checkpoint(job.id, "", [model_bytes(1)])
    with pytest.raises(InvalidArgument, match="not a valid state stream"):
        client.create_checkpoint(job.id, "c2", [b"garbage"])
    with pytest.raises(InvalidArgument, match="metric 'loss'"):
        client.create_checkpoint(
            job.id, "c3", [model_bytes(1)], metrics={"loss": float("nan")}
        )
    with pytest.raises(NotFound, match="no checkpoint 5"):
        client.open_checkpoint(job_name, number=5)
    with pytest.raises(NotFound, match="no checkpoint alias 'best'"):
        client.open_checkpoint(job_name, alias="best")
    assert [c.number for c in client.list_checkpoints(job_name)] == [1]


def test_aborted_upload_leaves_no_checkpoint(stack: Stack, job_name: str) -> None:
    job = host(stack.client, job_name)
    data = model_bytes(2, width=20_000)

    def aborted() -> Iterator[bytes]:
        yield data[: len(data) // 2]
        raise ConnectionError("aggregator died")

    with pytest.raises(ConnectionError):
        stack.client.create_checkpoint(job.id, "cycle-dead", aborted())

    assert [c.number for c in stack.client.list_checkpoints(job_name)] == [1]
    wait_for(
        lambda: len(_checkpoint_objects(stack, job.id)) == 1, timeout=10, what="cleanup"
    )
    retried = _create(stack, job, seed=2, cycle_id="cycle-dead")
    assert retried.number == 2


def test_corrupted_blob_is_data_loss(stack: Stack, job_name: str) -> None:
    host(stack.client, job_name)
    key = _object_keys(stack, "SELECT object_key FROM checkpoints", job_name)[0]
    original = b"".join(stack.objects.get(key))
    stack.objects.put(key, [original[:-1] + bytes([original[-1] ^ 0xFF])])

    _, data = stack.client.open_checkpoint(job_name)
    with pytest.raises(DataLoss, match="no longer match"):
        b"".join(data)

    stack.objects.delete(key)
    with pytest.raises(DataLoss, match="missing from the object store"):
        stack.client.open_checkpoint(job_name)


def test_blob_larger_than_a_grpc_message_streams_both_ways(
    stack: Stack, job_name: str
) -> None:
    job = host(stack.client, job_name)
    width = (MAX_MESSAGE_BYTES + 4 * 1024 * 1024) // 16  # float32 x 4 columns
    big = b"".join(encode_state_stream({"w": torch.ones(width, 4)}, 1024 * 1024))
    assert len(big) > MAX_MESSAGE_BYTES

    stored = stack.client.create_checkpoint(job.id, "cycle-big", [big])
    checkpoint, data = stack.client.open_checkpoint(job_name)

    digest = hashlib.sha256()
    largest = 0
    for chunk in data:
        digest.update(chunk)
        largest = max(largest, len(chunk))
    assert checkpoint.number == stored.number == 2
    assert checkpoint.size == len(big)
    assert digest.hexdigest() == hashlib.sha256(big).hexdigest() == stored.digest
    assert largest <= stack.settings.chunk_bytes


def _object_keys(stack: Stack, query: str, job_name: str) -> list[str]:
    conn = psycopg2.connect(stack.settings.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                query + " WHERE job_id = (SELECT id FROM jobs WHERE name = %s)",
                (job_name,),
            )
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def _checkpoint_objects(stack: Stack, job_id: str) -> list[str]:
    """Objects under the job's checkpoint prefix, temp files included."""
    return sorted(stored_objects(stack, f"checkpoints/{job_id}/"))
