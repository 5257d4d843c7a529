"""An accepted cycle's files: read from the grid's answer, downloaded or reloaded."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import torch

from fedgrid.errors import FedgridError
from fedgrid.tensors import read_state_stream
from fedgrid.worker.client import GridClient
from fedgrid.worker.errors import ProtocolError
from fedgrid.worker.events import CycleAssignment
from fedgrid.worker.progress import ProgressStore
from fedgrid.worker.training import PlanRunner

logger = logging.getLogger(__name__)


@dataclass
class CycleFiles:
    """What a worker holds for one cycle: metadata (JSON-ready) and blobs."""

    info: dict[str, Any]
    checkpoint: dict[str, torch.Tensor]
    plans: dict[str, bytes]
    protocols: dict[str, bytes]
    progress: dict[str, torch.Tensor] | None = None


def accepted_info(
    answer: Mapping[str, Any], auth: Mapping[str, Any], name: str, version: str | None
) -> dict[str, Any]:
    """The cycle's metadata from an accepted cycle request, checked."""
    try:
        return {
            "job": str(auth.get("job", name)),
            "version": str(auth.get("version", version or "")),
            "request_key": str(answer["request_key"]),
            "cycle_id": str(answer["cycle_id"]),
            "cycle_number": int(answer["cycle_number"]),
            "checkpoint": int(answer["checkpoint"]),
            "deadline": float(answer["deadline"]),
            "client_config": dict(answer.get("client_config", {})),
            "plans": [str(plan) for plan in answer.get("plans", {})],
            "protocols": [str(protocol) for protocol in answer.get("protocols", [])],
            "requires_speed_test": bool(auth.get("requires_speed_test")),
            "worker_id": str(auth.get("worker_id", "")),
            "secure_aggregation": dict(answer.get("secure_aggregation") or {}),
            "differential_privacy": dict(answer.get("differential_privacy") or {}),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"an acceptance the SDK cannot read: {exc}") from exc


def download(client: GridClient, info: Mapping[str, Any]) -> CycleFiles:
    """Fetch the checkpoint (a streamed state), the ops plans and protocols."""
    key = info["request_key"]
    with client.download_model(key) as response:
        response.raw.decode_content = True
        checkpoint = dict(read_state_stream(cast(BinaryIO, response.raw)))
    plans = {name: client.download_plan(name, key, "ops") for name in info["plans"]}
    protocols = {
        name: client.download_protocol(name, key) for name in info["protocols"]
    }
    return CycleFiles(dict(info), checkpoint, plans, protocols)


def load_saved(store: ProgressStore, job: str) -> CycleFiles | None:
    """The cycle an earlier process saved, unless it is past its deadline."""
    info = store.load_assignment()
    if info is None:
        return None
    if float(info.get("deadline", 0)) <= time.time():
        logger.info("[WorkerJob.resume] job=%s saved cycle expired", job)
        store.clear()
        return None
    try:
        return CycleFiles(
            info,
            store.load_checkpoint(),
            store.load_blobs("plans", list(info["plans"])),
            store.load_blobs("protocols", list(info["protocols"])),
            store.load_progress(),
        )
    except (OSError, KeyError, FedgridError) as exc:
        logger.warning("[WorkerJob.resume] job=%s saved cycle unreadable: %s", job, exc)
        store.clear()
        return None


def build_assignment(files: CycleFiles, resumed: bool) -> CycleAssignment:
    """The app's view of a cycle; plan bytes are decoded and checked here."""
    from fedgrid.plans import Plan

    info = files.info
    return CycleAssignment(
        job=info["job"],
        version=info["version"],
        request_key=info["request_key"],
        cycle_id=info["cycle_id"],
        cycle_number=info["cycle_number"],
        checkpoint=info["checkpoint"],
        deadline=info["deadline"],
        params={name: tensor.clone() for name, tensor in files.checkpoint.items()},
        plans={
            name: PlanRunner(Plan.from_bytes(blob))
            for name, blob in files.plans.items()
        },
        client_config=dict(info["client_config"]),
        protocols=dict(files.protocols),
        progress=files.progress,
        resumed=resumed,
    )
