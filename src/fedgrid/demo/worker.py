"""One demo worker process: trains the digits job on its own partition.

This is what an app developer writes around the worker SDK: load local data,
train with the downloaded plan when a cycle is accepted, report, repeat
until the grid says the job is finished.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from fedgrid.demo.data import Partition, batches, partition
from fedgrid.logs import setup_logging
from fedgrid.worker import CycleAssignment, Worker, WorkerJob, train

logger = logging.getLogger("fedgrid.demo.worker")


def train_cycle(job: WorkerJob, assignment: CycleAssignment, data: Partition) -> None:
    """Train the cycle's checkpoint on local data, then report the result."""
    plan = assignment.plans["training_plan"].plan
    config = assignment.client_config
    generator = torch.Generator().manual_seed(
        assignment.cycle_number * 1000 + len(data)
    )
    params = assignment.progress or assignment.params
    metrics: dict[str, float] = {}
    for _ in range(int(config.get("epochs", 1))):
        epoch = [
            {"features": features, "labels": labels}
            for features, labels in batches(data, int(config["batch_size"]), generator)
        ]
        result = train(plan, params, epoch, config, epochs=1)
        params, metrics = result.params, result.metrics
        job.save_progress(params)
    job.report(params, sample_count=len(data), metrics=metrics)
    logger.info(
        "[demo.worker] cycle=%s samples=%s loss=%.3f",
        assignment.cycle_number,
        len(data),
        metrics.get("loss", float("nan")),
    )


def run(url: str, index: int, workers: int, version: str | None, state: Path) -> int:
    """Take part in the job until it is finished; 0 on success."""
    data = partition(index, workers)
    with Worker(url, state_dir=state / f"worker-{index}") as worker:
        job = worker.new_job("digits", version)
        job.on("accepted", lambda assignment: train_cycle(job, assignment, data))
        job.start()
        job.join()
        if job.error is not None:
            logger.error("[demo.worker] index=%s failed: %s", index, job.error)
            return 1
    return 0 if job.finished else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the grid's gateway URL")
    parser.add_argument("--index", type=int, required=True, help="this worker's index")
    parser.add_argument("--workers", type=int, required=True, help="number of workers")
    parser.add_argument("--version", default=None, help="job version (default newest)")
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args()
    setup_logging("INFO")
    sys.exit(run(args.url, args.index, args.workers, args.version, args.state_dir))


if __name__ == "__main__":
    main()
