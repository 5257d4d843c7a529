"""Wall time of the local simulator with many virtual workers on the digits MLP.

Each worker holds `--samples` synthetic digits-shaped examples (64 features,
10 classes) in batches of `--batch`; every cycle admits all workers, each
runs the traced training plan with the interpreter, and FedAvg folds their
diffs through fedgrid.averaging. One warm-up cycle with a few workers runs
first. The last line gives the time per cycle and per worker step.
"""

from __future__ import annotations

import argparse
import time

import torch

import fedgrid
from fedgrid.job import JobSpec
from fedgrid.plans.examples import DigitsMLP, sgd_training_step

Batch = dict[str, torch.Tensor]


def make_job(workers: int, cycles: int) -> JobSpec:
    torch.manual_seed(0)
    return JobSpec(
        name="bench-simulate",
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
            "max_workers": workers,
            "max_diffs": workers,
            "min_diffs": workers,
            "pool_selection": "iterate",
            "num_cycles": cycles,
        },
    )


def partitions(workers: int, samples: int, batch: int) -> list[list[Batch]]:
    generator = torch.Generator().manual_seed(1)
    weights = torch.randn(64, 10, generator=generator)
    result = []
    for _ in range(workers):
        data = torch.randn(samples, 64, generator=generator)
        target = (data @ weights).argmax(dim=1)
        result.append(
            [
                {"data": data[i : i + batch], "target": target[i : i + batch]}
                for i in range(0, samples, batch)
            ]
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    traced = make_job(args.workers, args.cycles).trace()
    data = partitions(args.workers, args.samples, args.batch)
    warm = make_job(4, 1).trace()
    fedgrid.simulate(warm, data[:4])

    started = time.perf_counter()
    result = fedgrid.simulate(traced, data)
    elapsed = time.perf_counter() - started

    steps = args.workers * args.cycles * -(-args.samples // args.batch)
    losses = [round(m["loss"], 4) for m in result.metrics]
    print(f"losses per cycle: {losses}")
    print(
        f"model=digits-mlp params={sum(t.numel() for t in traced.state.values())} "
        f"workers={args.workers} cycles={args.cycles} samples={args.samples} "
        f"batch={args.batch} steps={steps}"
    )
    print(
        f"simulate_seconds={elapsed:.2f} per_cycle={elapsed / args.cycles:.2f} "
        f"per_step_ms={1000 * elapsed / steps:.3f}"
    )


if __name__ == "__main__":
    main()
