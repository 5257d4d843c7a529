"""Diff ingest (decode + validate + fold) against raw torch add_, and its memory.

Throughput: 100 serialized diffs of a 1,000,000-parameter float32 model held
in memory go through the aggregator's code path (WeightedSum.fold_reports);
the same diffs, already decoded, are summed with Tensor.add_. Memory: child
processes stream 50 and then 100 diffs from files (the object-store path, with
the sha256 check) and report their peak RSS, which must not grow with the count.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from fedgrid.averaging import DiffBuffer, ModelLayout, ReportInput, WeightedSum
from fedgrid.tensors import encode_state_stream

SHAPES = {"layer.weight": (999, 1000), "layer.bias": (1000,)}
REPEATS = 5


def make_diff(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(shape, generator=generator) for name, shape in SHAPES.items()
    }


def layout() -> ModelLayout:
    return ModelLayout.of({name: torch.zeros(shape) for name, shape in SHAPES.items()})


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def loader(blob: bytearray) -> Callable[[DiffBuffer], bytearray]:
    """A report loader over a diff already in memory (no buffer needed)."""
    return lambda _buffer: blob


def throughput(count: int) -> tuple[float, float]:
    blobs = [
        bytearray(b"".join(encode_state_stream(make_diff(i)))) for i in range(count)
    ]
    tensors = [list(make_diff(i).values()) for i in range(count)]
    reports = [
        ReportInput(str(i), 10 + i, {}, loader(blob)) for i, blob in enumerate(blobs)
    ]
    model = layout()
    accumulators = [torch.zeros(shape) for shape in SHAPES.values()]

    def ingest() -> None:
        sums = WeightedSum(model)
        sums.fold_reports(reports, weighted=True)
        assert sums.tally.used == count

    def raw_add() -> None:
        for diff in tensors:
            for total, tensor in zip(accumulators, diff, strict=True):
                total.add_(tensor)

    ingest()  # warm-up
    raw_add()
    # Interleaved and best-of, so a busy neighbour hurts both sides alike.
    ingest_times, add_times = [], []
    for _ in range(REPEATS):
        ingest_times.append(timed(ingest))
        add_times.append(timed(raw_add))
    return min(ingest_times), min(add_times)


def write_files(directory: Path, count: int) -> None:
    for i in range(count):
        with (directory / f"{i}.diff").open("wb") as out:
            for part in encode_state_stream(make_diff(i)):
                out.write(part)


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM; ru_maxrss would carry the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def stream_child(directory: Path, count: int) -> None:
    """Aggregate `count` diffs from files; print seconds and peak RSS in MB."""
    model = layout()
    reports = []
    for i in range(count):
        path = directory / f"{i}.diff"
        data_size = path.stat().st_size
        digest = hashlib.sha256(path.read_bytes()).hexdigest()

        def load(
            buffer: DiffBuffer,
            path: Path = path,
            size: int = data_size,
            digest: str = digest,
        ) -> memoryview:
            with path.open("rb", buffering=0) as stream:
                return buffer.fill(stream, size, digest)  # type: ignore[arg-type]

        reports.append(ReportInput(str(i), 1 + i, {}, load))
    start = time.perf_counter()
    sums = WeightedSum(model)
    sums.fold_reports(reports, weighted=True)
    seconds = time.perf_counter() - start
    assert sums.tally.used == count
    peak_mb = peak_rss_mb()
    print(f"{seconds:.4f} {peak_mb:.1f}")


def streamed(directory: Path, count: int) -> tuple[float, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(directory), str(count)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(output[0]), float(output[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--diffs", type=int, default=100)
    parser.add_argument("--child", nargs=2, metavar=("DIR", "COUNT"))
    args = parser.parse_args()
    if args.child:
        stream_child(Path(args.child[0]), int(args.child[1]))
        return

    ingest_s, add_s = throughput(args.diffs)
    ratio = add_s / ingest_s
    params = sum(torch.zeros(s).numel() for s in SHAPES.values())
    gb = args.diffs * params * 4 / 1e9
    print(f"in-memory ingest: {ingest_s * 1e3:.1f} ms ({gb / ingest_s:.1f} GB/s)")
    print(f"raw add_:         {add_s * 1e3:.1f} ms ({gb / add_s:.1f} GB/s)")

    with tempfile.TemporaryDirectory(prefix="fedgrid-bench-") as tmp:
        directory = Path(tmp)
        write_files(directory, args.diffs)
        half = args.diffs // 2
        half_s, half_peak = streamed(directory, half)
        full_s, full_peak = streamed(directory, args.diffs)
    print(
        f"from files with sha256, {half} diffs: {half_s:.2f} s, peak {half_peak:.0f} MB"
    )
    print(
        f"from files with sha256, {args.diffs} diffs: {full_s:.2f} s, "
        f"peak {full_peak:.0f} MB"
    )
    print(
        f"inputs: model_params={params} dtype=float32 diffs={args.diffs} "
        f"memory_counts={half},{args.diffs} threads={torch.get_num_threads()}"
    )
    print(f"ingest_vs_add={ratio:.2f} peak_rss_mb={full_peak:.0f}")


if __name__ == "__main__":
    main()
