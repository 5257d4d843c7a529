"""Privacy fixtures: DP server configs and deterministic noise sources."""

from __future__ import annotations

from typing import Any

import torch

from fedgrid.jobconfig import ServerConfig

DP = {"clipping_norm": 1.0, "noise_multiplier": 1.0, "target_delta": 1e-5}


def dp_config(**overrides: Any) -> ServerConfig:
    """A valid DP server config: 4 reports a cycle out of 100 workers."""
    private = dict(DP)
    private.update(overrides.pop("differential_privacy", {}))
    data: dict[str, Any] = {
        "max_workers": 4,
        "population_size": 100,
        "averaging": {"method": "fedavg"},
        "differential_privacy": private,
    }
    data.update(overrides)
    return ServerConfig.from_dict(data)


class ZeroNoise:
    """A noise source that adds nothing, to see clipping on its own."""

    def standard_normal(self, count: int) -> torch.Tensor:
        return torch.zeros(count, dtype=torch.float64)
