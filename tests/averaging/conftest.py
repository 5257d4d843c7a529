"""Helpers for the averaging tests: small models and framed diffs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch

from fedgrid.averaging import ReportInput
from fedgrid.tensors import state_stream_bytes


def model_state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "fc.weight": torch.randn(4, 3, generator=generator),
        "fc.bias": torch.randn(4, generator=generator),
        "bn.num_batches_tracked": torch.tensor(10, dtype=torch.int64),
    }


def diff_report(
    key: str,
    diff: Mapping[str, torch.Tensor],
    samples: Any = 1,
    metrics: Mapping[str, Any] | None = None,
    chunk_bytes: int = 1024 * 1024,
) -> ReportInput:
    data = state_stream_bytes(diff, chunk_bytes)
    return ReportInput(key, samples, metrics or {}, lambda _buffer: data)


def random_diff(seed: int, scale: float = 0.1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    base = model_state()
    diff = {
        name: torch.randn(t.shape, generator=generator) * scale
        for name, t in base.items()
        if t.is_floating_point()
    }
    diff["bn.num_batches_tracked"] = torch.tensor(-2, dtype=torch.int64)
    return diff


@pytest.fixture
def model() -> dict[str, torch.Tensor]:
    return model_state()
