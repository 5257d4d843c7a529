"""Hosting jobs, reading them back, newest versions and refused requests."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import torch
from prometheus_client import REGISTRY

from fedgrid.errors import AlreadyExists, InvalidArgument, NotFound
from fedgrid.tensors import load_state_stream
from fedgrid.v1 import model_store_pb2 as pb
from tests.modelstore.conftest import (
    Stack,
    host,
    model_bytes,
    model_state,
    stored_objects,
)
from tests.support import wait_for


def test_host_stores_job_and_checkpoint_one_as_latest(
    stack: Stack, job_name: str
) -> None:
    job = host(stack.client, job_name, averaging_plan="train")

    assert (job.name, job.version, job.latest_checkpoint) == (job_name, "1.0.0", 1)
    assert json.loads(job.client_config_json) == {"batch_size": 32, "lr": 0.1}
    assert json.loads(job.server_config_json) == {"max_workers": 5}
    assert [(p.name, list(p.formats)) for p in job.plans] == [
        ("train", ["ops", "torchscript"])
    ]
    assert list(job.protocols) == ["secagg+"]
    assert job.averaging_plan == "train"
    assert stack.client.get_job_by_id(job.id) == job

    checkpoint, data = stack.client.open_checkpoint(job_name)
    state = load_state_stream(io.BytesIO(b"".join(data)))
    assert (checkpoint.number, list(checkpoint.aliases)) == (1, ["latest"])
    assert checkpoint.cycle_id == ""
    assert checkpoint.size == len(model_bytes())
    assert set(state) == set(model_state())
    assert torch.equal(state["fc.weight"], model_state()["fc.weight"])


def test_plans_and_protocols_are_served_per_format(stack: Stack, job_name: str) -> None:
    host(stack.client, job_name)

    ops = b"".join(stack.client.get_plan(job_name, "", "train", "ops"))
    script = b"".join(stack.client.get_plan(job_name, "1.0.0", "train", "torchscript"))
    protocol = b"".join(stack.client.get_protocol(job_name, "", "secagg+"))

    assert (ops, script, protocol) == (b"ops-train", b"ts-train", b'{"k": 3}')


def test_newest_version_is_the_highest_semver(stack: Stack, job_name: str) -> None:
    for version in ("1.9.0", "1.10.0", "1.2.0", "1.10.0-rc.1"):
        host(stack.client, job_name, version)

    newest = stack.client.get_job(job_name)
    listed = stack.client.list_jobs(job_name)

    assert newest.version == "1.10.0"
    assert [job.version for job in listed] == [
        "1.2.0",
        "1.9.0",
        "1.10.0-rc.1",
        "1.10.0",
    ]
    assert job_name in {job.name for job in stack.client.list_jobs()}


def test_duplicate_job_is_already_exists(stack: Stack, job_name: str) -> None:
    host(stack.client, job_name)

    with pytest.raises(AlreadyExists, match="already hosted"):
        host(stack.client, job_name)


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("", "1.0.0", "empty"),
        ("x" * 129, "1.0.0", "at most 128"),
        ("team/job", "1.0.0", "path separator"),
        ("back\\slash", "1.0.0", "path separator"),
        ("bell\x07", "1.0.0", "control"),
        ("ok-name", "1.0", "semantic version"),
        ("ok-name", "latest", "semantic version"),
    ],
)
def test_bad_names_and_versions_are_invalid_argument(
    stack: Stack, name: str, version: str, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        host(stack.client, name, version)


def test_garbage_model_is_refused_and_leaves_no_job(
    stack: Stack, job_name: str
) -> None:
    with pytest.raises(InvalidArgument, match="not a valid state stream"):
        host(stack.client, job_name, model=b"\x00\x00\x00\x05hello-not-a-state")

    with pytest.raises(NotFound):
        stack.client.get_job(job_name)


def test_host_aborted_midway_leaves_no_job_and_no_blobs(
    stack: Stack, job_name: str
) -> None:
    def model() -> Iterator[bytes]:
        yield model_bytes()[:100]
        raise ConnectionError("pusher went away")

    header = pb.HostJobHeader(name=job_name, version="1.0.0")
    plan = pb.BlobRef(kind=pb.BlobRef.PLAN, name="train", format="ops")
    blobs = [(plan, [b"plan bytes"]), (pb.BlobRef(kind=pb.BlobRef.MODEL), model())]

    with pytest.raises(ConnectionError):
        stack.client.host_job(header, blobs)

    with pytest.raises(NotFound, match="no job is named"):
        stack.client.get_job(job_name)
    # The server notices the cancelled stream a moment after the client does.
    wait_for(lambda: stored_objects(stack) == set(), timeout=10, what="clean-up")


def test_host_refusals_name_what_to_fix(stack: Stack, job_name: str) -> None:
    header = pb.HostJobHeader(name=job_name, version="1.0.0")
    model = (pb.BlobRef(kind=pb.BlobRef.MODEL), [model_bytes()])
    bad_format = pb.BlobRef(kind=pb.BlobRef.PLAN, name="p", format="onnx")

    with pytest.raises(InvalidArgument, match="no MODEL blob"):
        stack.client.host_job(header, [])
    with pytest.raises(InvalidArgument, match="format 'onnx' is not served"):
        stack.client.host_job(header, [model, (bad_format, [b"x"])])
    with pytest.raises(InvalidArgument, match="sent twice"):
        stack.client.host_job(header, [model, model])
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        stack.client.host_job(
            pb.HostJobHeader(name=job_name, version="1.0.0", client_config_json="{"),
            [model],
        )
    with pytest.raises(InvalidArgument, match="averaging plan 'avg' is not among"):
        stack.client.host_job(
            pb.HostJobHeader(name=job_name, version="1.0.0", averaging_plan="avg"),
            [model],
        )
    assert stored_objects(stack) == set()


def test_unknown_things_are_not_found(stack: Stack, job_name: str) -> None:
    host(stack.client, job_name)
    client = stack.client

    with pytest.raises(NotFound, match="no job is named"):
        client.get_job("never-pushed")
    with pytest.raises(NotFound, match=r"hosted versions: 1\.0\.0"):
        client.get_job(job_name, "2.0.0")
    with pytest.raises(NotFound, match="no job has id"):
        client.get_job_by_id("00000000-0000-0000-0000-000000000000")
    with pytest.raises(NotFound, match="no plan 'eval'"):
        client.get_plan(job_name, "", "eval", "ops")
    with pytest.raises(NotFound, match="not stored as 'onnx'"):
        client.get_plan(job_name, "", "train", "onnx")
    with pytest.raises(NotFound, match="no protocol"):
        client.get_protocol(job_name, "", "dp")
    with pytest.raises(InvalidArgument, match="not a UUID"):
        client.get_job_by_id("not-a-uuid")


def test_refusals_are_counted_by_outcome(stack: Stack) -> None:
    labels = {"method": "GetJob", "outcome": "not_found"}
    before = REGISTRY.get_sample_value("fedgrid_model_store_rpcs_total", labels) or 0

    with pytest.raises(NotFound):
        stack.client.get_job("never-pushed")

    after = REGISTRY.get_sample_value("fedgrid_model_store_rpcs_total", labels)
    assert after == before + 1
