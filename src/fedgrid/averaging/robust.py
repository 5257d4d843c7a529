"""Coordinate-wise median and trimmed mean, one block of each tensor at a time.

Both need every diff at once for each coordinate. To keep memory bounded,
each validated diff is first written once to a spool file (raw parameter
bytes in model order, so every parameter sits at the same offset in every
file); then each tensor is taken in column blocks: the block of every diff
is read into a (diffs x block) matrix, sorted along the diffs, and reduced.

Cost, for K usable diffs of a model of P parameters: K x P x itemsize bytes
of temporary disk, about `memory_budget` bytes of memory (the block matrix
and its sorted copy), and O(P x K log K) time; no sharding.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch

from fedgrid.averaging.accumulate import ReportInput, Tally, read_report
from fedgrid.averaging.diffs import DiffBuffer, ParsedDiff
from fedgrid.averaging.errors import DiffRejected
from fedgrid.averaging.layout import ModelLayout, TensorSpec, accumulation_dtype
from fedgrid.errors import InvalidArgument

ROBUST = ("median", "trimmed_mean")
DEFAULT_MEMORY_BUDGET = 64 * 1024 * 1024


def _raw_bytes(tensor: torch.Tensor) -> memoryview:
    return memoryview(tensor.view(torch.uint8).numpy().data)


def _write_diff(path: Path, parsed: ParsedDiff, layout: ModelLayout) -> None:
    by_index: dict[int, list[tuple[int, torch.Tensor]]] = {}
    for segment in parsed.segments:
        by_index.setdefault(segment.spec.index, []).append(
            (segment.start, segment.values)
        )
    with path.open("wb") as out:
        for spec in layout:
            for _, values in sorted(by_index.get(spec.index, []), key=lambda s: s[0]):
                out.write(_raw_bytes(values))


def _reduce(sorted_block: torch.Tensor, method: str, trim_ratio: float) -> torch.Tensor:
    count = sorted_block.shape[0]
    if method == "median":
        middle = count // 2
        if count % 2:
            return sorted_block[middle]
        return (sorted_block[middle - 1] + sorted_block[middle]) / 2
    cut = math.floor(trim_ratio * count)
    return sorted_block[cut : count - cut].mean(dim=0)


def _reduce_tensor(
    spec: TensorSpec,
    offset: int,
    files: list[int],
    method: str,
    trim_ratio: float,
    memory_budget: int,
) -> torch.Tensor:
    dtype = accumulation_dtype(spec.dtype)
    itemsize = torch.empty((), dtype=dtype).element_size()
    count = len(files)
    # The block matrix, its sorted copy and the raw read buffer fit the budget.
    block = max(1, memory_budget // (count * (2 * itemsize + spec.itemsize)))
    result = torch.empty(spec.numel, dtype=dtype)
    raw = torch.empty(block, dtype=spec.dtype)
    matrix = torch.empty((count, block), dtype=dtype)
    for start in range(0, spec.numel, block):
        width = min(block, spec.numel - start)
        for row, fd in enumerate(files):
            target = _raw_bytes(raw[:width])
            position = offset + start * spec.itemsize
            if os.preadv(fd, [target], position) != len(target):
                raise InvalidArgument("a spooled diff is shorter than the model")
            matrix[row, :width].copy_(raw[:width])
        ordered = matrix[:, :width].sort(dim=0).values
        result[start : start + width] = _reduce(ordered, method, trim_ratio)
    return result


def robust_mean(
    reports: Iterable[ReportInput],
    layout: ModelLayout,
    method: str,
    trim_ratio: float = 0.1,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    spool_dir: Path | None = None,
) -> tuple[dict[str, torch.Tensor], Tally]:
    """The coordinate-wise median or trimmed mean of the usable diffs."""
    if method not in ROBUST:
        raise InvalidArgument(f"{method!r} is not a robust method; use {ROBUST}")
    tally = Tally()
    buffer = DiffBuffer()
    with tempfile.TemporaryDirectory(prefix="fedgrid-spool-", dir=spool_dir) as tmp:
        paths: list[Path] = []
        for report in reports:
            try:
                parsed, _ = read_report(report, layout, buffer, weighted=False)
            except DiffRejected as exc:
                tally.exclude(report.key, str(exc))
                continue
            path = Path(tmp) / f"{len(paths)}.raw"
            _write_diff(path, parsed, layout)
            del parsed
            paths.append(path)
            tally.count(report)
        if not paths:
            return {}, tally
        files = [os.open(path, os.O_RDONLY) for path in paths]
        try:
            mean: dict[str, torch.Tensor] = {}
            offset = 0
            for spec in layout:
                mean[spec.name] = _reduce_tensor(
                    spec, offset, files, method, trim_ratio, memory_budget
                )
                offset += spec.nbytes
        finally:
            for fd in files:
                os.close(fd)
    return mean, tally
