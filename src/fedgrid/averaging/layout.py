"""The shape of a model: tensor names, shapes and dtypes that every diff must match."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from fedgrid.errors import InvalidArgument

FLOATING = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype sums of a parameter are kept in: float32 or float64."""
    if dtype == torch.float64 or not dtype.is_floating_point:
        # Integer buffers (e.g. batch counters) are averaged exactly, then rounded.
        return torch.float64
    return torch.float32


@dataclass(frozen=True)
class TensorSpec:
    """One parameter of the model."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    index: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize

    @property
    def is_floating(self) -> bool:
        return self.dtype.is_floating_point


class ModelLayout:
    """Ordered tensor specs of a model, looked up by name."""

    def __init__(self, specs: list[TensorSpec]) -> None:
        if not specs:
            raise InvalidArgument("the model has no tensors; nothing to average")
        self.specs = specs
        self._by_name = {spec.name: spec for spec in specs}
        if len(self._by_name) != len(specs):
            raise InvalidArgument("the model names a tensor twice")

    @classmethod
    def of(cls, state: Mapping[str, torch.Tensor]) -> ModelLayout:
        """The layout of a model state (its names, shapes and dtypes, in order)."""
        return cls(
            [
                TensorSpec(name, tuple(tensor.shape), tensor.dtype, index)
                for index, (name, tensor) in enumerate(state.items())
            ]
        )

    def __len__(self) -> int:
        return len(self.specs)

    def __iter__(self) -> Iterator[TensorSpec]:
        return iter(self.specs)

    def get(self, name: str) -> TensorSpec | None:
        return self._by_name.get(name)

    @property
    def numel(self) -> int:
        return sum(spec.numel for spec in self.specs)

    @property
    def nbytes(self) -> int:
        return sum(spec.nbytes for spec in self.specs)

    def describe(self, spec: TensorSpec) -> str:
        return f"{list(spec.shape)} of {spec.dtype}"

    def check_state(self, state: Mapping[str, torch.Tensor], what: str) -> None:
        """Raise InvalidArgument unless state has exactly this layout."""
        missing = [spec.name for spec in self.specs if spec.name not in state]
        extra = [name for name in state if self.get(name) is None]
        if missing or extra:
            raise InvalidArgument(
                f"{what} does not match the model: missing {missing}, "
                f"unexpected {extra}"
            )
        for spec in self.specs:
            tensor = state[spec.name]
            if tuple(tensor.shape) != spec.shape or tensor.dtype != spec.dtype:
                raise InvalidArgument(
                    f"{what}: tensor {spec.name!r} is {list(tensor.shape)} of "
                    f"{tensor.dtype}; the model's is {self.describe(spec)}"
                )

    def zeros(self) -> dict[str, torch.Tensor]:
        """Flat zero tensors in the accumulation dtype of each parameter."""
        return {
            spec.name: torch.zeros(spec.numel, dtype=accumulation_dtype(spec.dtype))
            for spec in self.specs
        }


def is_finite(tensor: torch.Tensor) -> bool:
    """Whether a floating tensor holds no NaN or Inf (integers always do)."""
    if not tensor.dtype.is_floating_point or tensor.numel() == 0:
        return True
    # A sum is NaN/Inf when any element is; one reduction pass is much cheaper
    # than isfinite(). Only a non-finite sum (possibly an overflow of large
    # finite values) needs the exact element-wise check.
    total = tensor.sum(dtype=torch.float32 if tensor.element_size() < 4 else None)
    if math.isfinite(float(total)):
        return True
    return bool(torch.isfinite(tensor).all())
