"""Clipping a diff to an L2 norm, on the grid or on a worker before masking."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch


def l2_norm(tensors: Iterable[torch.Tensor]) -> float:
    """The L2 norm of all the values of several tensors taken as one vector."""
    total = 0.0
    for tensor in tensors:
        if tensor.numel():
            total += float(tensor.detach().to(torch.float64).square().sum())
    return math.sqrt(total)


def clip_factor(norm: float, clipping_norm: float) -> float:
    """The scale that brings a vector of this norm within clipping_norm."""
    if clipping_norm <= 0 or not math.isfinite(clipping_norm):
        raise ValueError(f"clipping_norm must be finite and > 0, got {clipping_norm}")
    if not math.isfinite(norm):
        raise ValueError("a diff with NaN or infinite values cannot be clipped")
    return 1.0 if norm <= clipping_norm else clipping_norm / norm


def clip_diff(
    diff: Mapping[str, torch.Tensor], clipping_norm: float
) -> dict[str, torch.Tensor]:
    """The diff scaled so its whole L2 norm is at most clipping_norm.

    Workers call this before quantizing and masking their diff when secure
    aggregation is on, because the grid then never sees a single diff. The
    norm covers every tensor; integer ones (counters) are scaled and rounded
    towards zero, which can only shrink them further.
    """
    factor = clip_factor(l2_norm(diff.values()), clipping_norm)
    if factor == 1.0:
        return dict(diff)
    clipped: dict[str, torch.Tensor] = {}
    for name, tensor in diff.items():
        scaled = tensor.detach().to(torch.float64) * factor
        if not tensor.is_floating_point():
            scaled = torch.trunc(scaled)
        clipped[name] = scaled.to(tensor.dtype)
    return clipped
