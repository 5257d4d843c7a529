"""Model diffs as secure aggregation vectors, and unmasked sums as averages.

A diff travels as one flat float64 vector: every tensor of the checkpoint,
flattened, in the checkpoint's order. The unmasked sum holds sum(w * clip(d))
and sum(w); it becomes a WeightedSum, so the server step (weighted mean, then
any server optimizer) is the same code the plain aggregation runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from fedgrid.averaging import AveragingFailed, AveragingResult, WeightedSum
from fedgrid.averaging.engine import finish_linear
from fedgrid.averaging.layout import ModelLayout
from fedgrid.errors import ConfigError, InvalidArgument
from fedgrid.jobconfig import AveragingConfig, ServerConfig
from fedgrid.privacy.mechanism import PrivateAveraging
from fedgrid.secagg.params import SecAggParams
from fedgrid.secagg.quantization import Quantizer


def secure_config(config: ServerConfig) -> bool:
    """Whether the job's cycles run secure aggregation."""
    secure = config.secure_aggregation
    return secure is not None and secure.enabled


def refuse_averaging_plan(config: ServerConfig, averaging_plan: str) -> None:
    """Refuse any averaging plan under secure aggregation: it needs single diffs."""
    if averaging_plan and secure_config(config):
        raise ConfigError(
            f"averaging plan {averaging_plan!r} folds single diffs, but with "
            "secure_aggregation enabled the grid only sees their sum; drop the "
            "plan and use server_config.averaging (fedavg, mean or a server "
            "optimizer)"
        )


def vector_length(state: Mapping[str, torch.Tensor]) -> int:
    """How many values a diff of this model has."""
    return sum(int(tensor.numel()) for tensor in state.values())


def diff_vector(
    original: Mapping[str, torch.Tensor], diff: Mapping[str, torch.Tensor]
) -> NDArray[np.float64]:
    """The diff flattened in the checkpoint's tensor order."""
    if set(diff) != set(original):
        raise InvalidArgument(
            f"the diff's tensors {sorted(diff)} differ from the checkpoint's "
            f"{sorted(original)}"
        )
    parts = [
        diff[name].detach().to(torch.float64).reshape(-1).numpy() for name in original
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)


def params_for(
    config: ServerConfig,
    cycle_id: str,
    participants: Sequence[str],
    length: int,
    graph_seed: bytes | None = None,
) -> SecAggParams:
    """The run's public parameters for one cycle of a job."""
    secure = config.secure_aggregation
    if secure is None or not secure.enabled:
        raise ConfigError("the job's server config does not enable secure_aggregation")
    neighbours = min(secure.neighbours, _largest_even_below(len(participants)))
    threshold = min(secure.threshold, neighbours + 1)
    if threshold * 2 <= neighbours + 1:
        threshold = neighbours // 2 + 1
    return SecAggParams.create(
        cycle_id=cycle_id,
        participants=participants,
        threshold=threshold,
        neighbours=neighbours,
        vector_length=length,
        bits=secure.bits,
        clipping_range=secure.clipping_range,
        max_weight=secure.max_weight,
        max_workers=config.max_workers,
        graph_seed=graph_seed,
    )


def _largest_even_below(count: int) -> int:
    # A ring of n workers has at most n - 1 neighbours per worker, and the
    # library wants an even count of at least 2.
    largest = count - 1 if (count - 1) % 2 == 0 else count - 2
    return max(2, largest)


def unmasked_sum(
    layout: ModelLayout,
    quantizer: Quantizer,
    total: NDArray[np.unsignedinteger],
    survivors: int,
) -> WeightedSum:
    """The unmasked total as the weighted sum the server step takes."""
    weighted, weight = quantizer.decode_sum(total)
    if weighted.size != layout.numel:
        raise InvalidArgument(
            f"the unmasked sum has {weighted.size} values; the model has {layout.numel}"
        )
    sums = WeightedSum(layout)
    start = 0
    for spec in layout:
        stop = start + spec.numel
        target = sums.sums[spec.name]
        target.copy_(torch.from_numpy(weighted[start:stop]).to(target.dtype))
        start = stop
    sums.total_weight = float(weight)
    sums.tally.used = survivors
    sums.tally.num_samples = float(weight)
    return sums


def finish_secure(
    current: Mapping[str, torch.Tensor],
    quantizer: Quantizer,
    total: NDArray[np.unsignedinteger],
    survivors: int,
    config: AveragingConfig,
    server_state: Mapping[str, torch.Tensor] | None = None,
    privacy: PrivateAveraging | None = None,
) -> AveragingResult:
    """The next model from an unmasked sum: weighted mean, then the server step.

    Under differential privacy workers clipped their diffs and sent weight 1;
    the sum gets noise and the fixed denominator (fedgrid.privacy.mechanism).
    """
    sums = unmasked_sum(ModelLayout.of(current), quantizer, total, survivors)
    if sums.total_weight <= 0:
        raise AveragingFailed("the surviving inputs carry no weight")
    return finish_linear(current, sums, config, server_state, privacy)
