"""Per-step time of the browser worker (TensorFlow.js, wasm) against the Python worker.

Both run the traced SGD training plan of the demo's digits MLP on the same
state and the same batch of 32 through their workers' `train` loops (plan
run, parameters carried over, metrics read every step). Each side warms up,
then times rounds of steps and keeps the median round; the Python side runs
in this process with one torch thread (the wasm backend runs on one thread
without cross-origin isolation), the browser side in headless Chromium
(Debian's) driven by playwright-core, against pages served on 127.0.0.1.
Needs `workers/browser/install.sh` to have run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from fedgrid.plans import trace_training_plan
from fedgrid.plans.examples import DigitsMLP, sgd_training_step
from fedgrid.tensors import encode_state_stream
from fedgrid.worker import train

PACKAGE = Path(__file__).resolve().parents[1] / "workers" / "browser"
BATCH = 32


def _python_seconds(
    plan: object, params: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
    steps: int, warmup: int, rounds: int,
) -> float:  # fmt: skip
    config = {"lr": 0.1}
    train(plan, params, [batch] * warmup, config)  # type: ignore[arg-type]
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        train(plan, params, [batch] * steps, config)  # type: ignore[arg-type]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _browser_seconds(
    folder: Path, steps: int, warmup: int, rounds: int, backend: str
) -> float:
    server = subprocess.Popen(
        ["node", str(PACKAGE / "serve.js"), "--port", "0", "--mount",
         f"/fixtures={folder}"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = json.loads(server.stdout.readline())["port"]
        url = (
            f"http://127.0.0.1:{port}/bench/steps.html?steps={steps}"
            f"&warmup={warmup}&rounds={rounds}&backend={backend}"
        )
        completed = subprocess.run(
            ["node", str(PACKAGE / "tools" / "run-page.mjs"),
             json.dumps({"url": url, "timeout": 600})],
            capture_output=True, text=True, check=True, timeout=660,
            env=dict(os.environ, FEDGRID_BROWSER_DIR=str(PACKAGE)),
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(15)
        if server.stdout is not None:
            server.stdout.close()
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    if "error" in answer:
        raise SystemExit(f"the benchmark page failed: {answer['error']}")
    result = answer["result"]
    if result["backend"] != backend:
        raise SystemExit(f"the page ran on {result['backend']}, not {backend}")
    return float(statistics.median(result["rounds"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", default="wasm", choices=["wasm", "cpu"])
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = DigitsMLP()
    batch = {
        "data": torch.randn(BATCH, 64),
        "target": torch.randint(0, 10, (BATCH,)),
    }
    lr = torch.tensor(0.1)
    plan = trace_training_plan(sgd_training_step, model, {**batch, "lr": lr})
    params = {name: p.detach().clone() for name, p in model.named_parameters()}

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "plan.bin").write_bytes(plan.to_bytes())
        with open(root / "inputs.bin", "wb") as handle:
            for part in encode_state_stream({**params, **batch, "lr": lr}):
                handle.write(part)
        browser = _browser_seconds(
            root, args.steps, args.warmup, args.rounds, args.backend
        )
    python = _python_seconds(plan, params, batch, args.steps, args.warmup, args.rounds)

    browser_ms = browser / args.steps * 1000
    python_ms = python / args.steps * 1000
    size = sum(p.numel() for p in params.values())
    print(
        f"model=DigitsMLP params={size} batch={BATCH} steps={args.steps} "
        f"warmup={args.warmup} rounds={args.rounds} backend={args.backend} "
        f"torch_threads={torch.get_num_threads()} "
        f"browser_ms_per_step={browser_ms:.3f} python_ms_per_step={python_ms:.3f}"
    )
    print(f"browser_vs_python={browser_ms / python_ms:.2f}")


if __name__ == "__main__":
    main()
