"""The public parameters of one secure aggregation run."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from fedgrid.errors import ConfigError
from fedgrid.secagg.crypto import context
from fedgrid.secagg.errors import TooFewSurvivors
from fedgrid.secagg.graph import NeighbourGraph, build_graph
from fedgrid.secagg.quantization import Quantizer
from fedgrid.v1 import secagg_pb2

PROTOCOL = "secagg+"
GRAPH_SEED_BYTES = 32


def check_threshold(threshold: int, neighbours: int) -> None:
    """A share group is a worker and its neighbours; a majority must rebuild."""
    if neighbours < 2 or neighbours % 2:
        raise ConfigError(f"neighbours must be even and >= 2, got {neighbours}")
    if not (neighbours + 1) / 2 < threshold <= neighbours + 1:
        raise ConfigError(
            f"threshold must exceed half of the share group (neighbours + 1 = "
            f"{neighbours + 1}) and be at most its size, got {threshold}"
        )


@dataclass(frozen=True)
class SecAggParams:
    """What every party of a run agrees on before the first round."""

    cycle_id: str
    graph_seed: bytes
    participants: tuple[str, ...]
    threshold: int
    neighbours: int
    quantizer: Quantizer
    vector_length: int
    graph: NeighbourGraph = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_threshold(self.threshold, self.neighbours)
        if self.vector_length < 1:
            raise ConfigError(f"vector_length must be >= 1, got {self.vector_length}")
        graph = build_graph(self.participants, self.graph_seed, self.neighbours)
        object.__setattr__(self, "graph", graph)
        object.__setattr__(self, "participants", tuple(sorted(self.participants)))
        if len(self.participants) < self.threshold:
            raise TooFewSurvivors(
                f"{len(self.participants)} participants cannot reach the "
                f"reconstruction threshold {self.threshold}"
            )

    @classmethod
    def create(
        cls,
        *,
        cycle_id: str,
        participants: Iterable[str],
        threshold: int,
        neighbours: int,
        vector_length: int,
        bits: int = 32,
        clipping_range: float = 1.0,
        max_weight: int = 1,
        max_workers: int | None = None,
        graph_seed: bytes | None = None,
    ) -> SecAggParams:
        """Parameters for a run; a fresh random ring seed unless one is given."""
        members = tuple(participants)
        quantizer = Quantizer(
            bits=bits,
            clipping_range=clipping_range,
            max_weight=max_weight,
            max_workers=max_workers or len(members),
        )
        return cls(
            cycle_id=cycle_id,
            graph_seed=graph_seed or os.urandom(GRAPH_SEED_BYTES),
            participants=members,
            threshold=threshold,
            neighbours=neighbours,
            quantizer=quantizer,
            vector_length=vector_length,
        )

    @property
    def words(self) -> int:
        """Length of a masked vector: the parameters plus the weight."""
        return self.vector_length + 1

    def info(self, purpose: str, *workers: str) -> bytes:
        """Domain-separation bytes for a key or check within this run."""
        return context(PROTOCOL, purpose, self.cycle_id, *workers)

    def to_setup(self) -> secagg_pb2.SecAggSetup:
        """The parameters as the message sent to workers."""
        q = self.quantizer
        return secagg_pb2.SecAggSetup(
            cycle_id=self.cycle_id,
            graph_seed=self.graph_seed,
            participants=list(self.participants),
            threshold=self.threshold,
            neighbours=self.neighbours,
            bits=q.bits,
            clipping_range=q.clipping_range,
            max_weight=q.max_weight,
            max_workers=q.max_workers,
            vector_length=self.vector_length,
        )

    @classmethod
    def from_setup(cls, setup: secagg_pb2.SecAggSetup) -> SecAggParams:
        """Parameters from the setup message, validated like any config."""
        if len(setup.graph_seed) != GRAPH_SEED_BYTES:
            raise ConfigError(f"graph_seed must be {GRAPH_SEED_BYTES} bytes")
        return cls(
            cycle_id=setup.cycle_id,
            graph_seed=setup.graph_seed,
            participants=tuple(setup.participants),
            threshold=setup.threshold,
            neighbours=setup.neighbours,
            quantizer=Quantizer(
                bits=setup.bits,
                clipping_range=setup.clipping_range,
                max_weight=setup.max_weight,
                max_workers=setup.max_workers,
            ),
            vector_length=setup.vector_length,
        )
