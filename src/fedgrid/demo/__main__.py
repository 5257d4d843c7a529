"""`make demo`: the digits job end to end through the whole grid.

Starts the grid (`fedgrid stack up`, embedded servers when none are
configured), pushes the job with the CLI, runs worker processes through the
worker SDK, pulls every checkpoint, scores it on held-out data, saves the
metrics plot, stops everything it started, and exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from fedgrid.config import Settings
from fedgrid.demo.data import split
from fedgrid.demo.digits_job import CYCLES, WORKERS
from fedgrid.demo.model import DigitsMLP, accuracy
from fedgrid.localstack import StackInfo, read_stack_info
from fedgrid.localstack.embedded import pick_port
from fedgrid.localstack.health import service_health
from fedgrid.tensors import load_state_stream

JOB_FILE = Path(__file__).with_name("digits_job.py")
FEDGRID = [sys.executable, "-c", "from fedgrid.cli import main; main()"]
PORT_VARIABLES = {
    "FEDGRID_GATEWAY_PORT": 8080,
    "FEDGRID_MODEL_STORE_PORT": 50051,
    "FEDGRID_CYCLE_MANAGER_PORT": 50052,
    "FEDGRID_SIGNALING_PORT": 8765,
    "FEDGRID_MODEL_STORE_METRICS_PORT": 9101,
    "FEDGRID_CYCLE_MANAGER_METRICS_PORT": 9102,
    "FEDGRID_AGGREGATOR_METRICS_PORT": 9103,
}


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


@dataclass
class Demo:
    """What the demo started, so that it can stop all of it."""

    workers: int
    cycles: int
    var_dir: Path
    version: str = field(default_factory=lambda: f"1.0.{int(time.time() * 1000)}")
    env: dict[str, str] = field(default_factory=dict)
    stack: subprocess.Popen[bytes] | None = None
    worker_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    redis_url: str = ""

    @property
    def job(self) -> tuple[str, str, str]:
        """The CLI arguments naming this run's job version."""
        return ("digits", "--version", self.version)

    # -- steps ------------------------------------------------------------

    def start_grid(self, timeout: float) -> StackInfo:
        """`fedgrid stack up` in the background, on free ports; wait for health."""
        self.env = dict(os.environ)
        self.env["FEDGRID_VAR_DIR"] = str(self.var_dir / "stack")
        # a namespace of its own on a shared Redis, as another grid may use it
        self.env.setdefault("FEDGRID_REDIS_PREFIX", f"fedgrid-demo-{os.getpid()}:")
        for variable, port in PORT_VARIABLES.items():
            self.env.setdefault(variable, str(pick_port(port)))
        self.env["FEDGRID_DEMO_VERSION"] = self.version
        self.env["FEDGRID_DEMO_WORKERS"] = str(self.workers)
        self.env["FEDGRID_DEMO_CYCLES"] = str(self.cycles)
        stack_dir = self.var_dir / "stack"
        stack_dir.mkdir(parents=True, exist_ok=True)
        (stack_dir / "stack.json").unlink(missing_ok=True)
        log = (self.var_dir / "stack-up.log").open("wb")
        self.stack = subprocess.Popen(
            [*FEDGRID, "stack", "up"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stack.poll() is not None:
                raise RuntimeError(
                    f"fedgrid stack up exited ({self.stack.returncode}); "
                    f"see {self.var_dir / 'stack-up.log'}"
                )
            info = read_stack_info(stack_dir)
            if info is not None and all(
                word in ("SERVING", "ok") for word in service_health(info).values()
            ):
                self.env["FEDGRID_URL"] = info.gateway_url
                self.redis_url = info.redis_url
                self.env["FEDGRID_ADMIN_TOKEN"] = info.admin_token()
                if info.embedded:
                    say(f"started embedded {' and '.join(info.embedded)}")
                return info
            time.sleep(0.5)
        raise RuntimeError(f"the grid was not healthy after {timeout:.0f}s")

    def cli(self, *args: str) -> str:
        """Run one `fedgrid` command; its output, or an error with its message."""
        done = subprocess.run(
            [*FEDGRID, *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"fedgrid {' '.join(args)} failed: {done.stderr.strip()}"
            )
        return done.stdout

    def start_workers(self, url: str) -> None:
        for index in range(self.workers):
            log = (self.var_dir / f"worker-{index}.log").open("wb")
            self.worker_procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "fedgrid.demo.worker",
                        "--url",
                        url,
                        "--index",
                        str(index),
                        "--workers",
                        str(self.workers),
                        "--version",
                        self.version,
                        "--state-dir",
                        str(self.var_dir / "workers"),
                    ],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()

    def wait_for_workers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        reported = 0
        while time.monotonic() < deadline:
            codes = [proc.poll() for proc in self.worker_procs]
            if all(code is not None for code in codes):
                failed = [i for i, code in enumerate(codes) if code != 0]
                if failed:
                    raise RuntimeError(
                        f"workers {failed} failed; see {self.var_dir}/worker-N.log"
                    )
                return
            status = json.loads(self.cli("status", *self.job, "--json"))
            completed = int(status.get("status", {}).get("completed_cycles", 0))
            for cycle in range(reported + 1, completed + 1):
                say(f"cycle {cycle} of {self.cycles} aggregated")
            reported = max(reported, completed)
            time.sleep(1.0)
        raise RuntimeError(f"workers still training after {timeout:.0f}s")

    def score_checkpoints(self) -> list[tuple[int, float]]:
        """Pull every checkpoint and score it on the held-out digits."""
        listing = json.loads(self.cli("checkpoints", *self.job, "--json"))
        _, held_out = split(self.workers)
        scores: list[tuple[int, float]] = []
        for item in sorted(listing["checkpoints"], key=lambda c: int(c["number"])):
            number = int(item["number"])
            path = self.var_dir / f"checkpoint-{number}.bin"
            self.cli("pull", *self.job, "--checkpoint", str(number), "-o", str(path))
            model = DigitsMLP()
            model.load_state_dict(load_state_stream(io.BytesIO(path.read_bytes())))
            scores.append((number, accuracy(model, held_out.features, held_out.labels)))
        return scores

    def stop(self) -> None:
        """Stop the workers, then the grid; everything by its own process."""
        for proc in self.worker_procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.worker_procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.stack is not None and self.stack.poll() is None:
            self.stack.terminate()
            try:
                self.stack.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.stack.kill()
                self.stack.wait()
        if self.redis_url:
            forget_redis_keys(self.redis_url, self.env["FEDGRID_REDIS_PREFIX"])


def forget_redis_keys(url: str, prefix: str) -> None:
    """Delete the live state and queue keys this run left on a shared Redis."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        for pattern in (f"{prefix}*", f"_kombu.binding.{prefix}*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    except redis.RedisError:
        pass  # an embedded Redis is gone with the stack, and its keys with it
    finally:
        client.close()


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--cycles", type=int, default=CYCLES)
    parser.add_argument("--min-accuracy", type=float, default=0.9)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    demo = Demo(
        args.workers, args.cycles, Settings.from_env().var_dir.resolve() / "demo"
    )
    demo.var_dir.mkdir(parents=True, exist_ok=True)
    try:
        say("starting the grid (fedgrid stack up)")
        info = demo.start_grid(timeout=300)
        say(f"grid is up at {info.gateway_url}")
        say(
            f"pushing job digits {demo.version}: "
            f"{args.workers} workers, {args.cycles} cycles"
        )
        demo.cli("push", str(JOB_FILE), "--json")
        demo.start_workers(info.gateway_url)
        say(f"{args.workers} worker processes are training")
        demo.wait_for_workers(timeout=args.timeout)
        scores = demo.score_checkpoints()
        plot = demo.var_dir / "metrics.png"
        demo.cli("plot", *demo.job, "-o", str(plot))
        say(f"metrics plot saved to {plot}")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        say(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        demo.stop()
        say("stopped everything the demo started")
    print("checkpoint  held-out accuracy")
    for number, score in scores:
        print(f"{number:>10}  {score:.3f}")
    final = scores[-1][1]
    print(f"took {time.monotonic() - started:.0f}s")
    print(f"final_accuracy={final:.4f} checkpoints={len(scores)}")
    if len(scores) != args.cycles + 1 or final < args.min_accuracy:
        say(
            f"expected {args.cycles + 1} checkpoints and an accuracy of at least "
            f"{args.min_accuracy}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run())
