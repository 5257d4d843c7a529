"""The neighbour ring: who shares keys and pairwise masks with whom."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from fedgrid.errors import InvalidArgument


@dataclass(frozen=True)
class NeighbourGraph:
    """Workers on a ring in a seeded order; each has k/2 neighbours per side.

    A worker's share group is itself plus its neighbours: those are the ones
    holding Shamir shares of its secrets (share point = ring position + 1).
    With k >= n - 1 the graph is complete.
    """

    order: tuple[str, ...]
    neighbours_per_worker: int
    _position: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_position", {w: i for i, w in enumerate(self.order)})

    @property
    def size(self) -> int:
        return len(self.order)

    def position(self, worker: str) -> int:
        """The worker's place on the ring, 0-based."""
        try:
            return self._position[worker]
        except KeyError:
            raise InvalidArgument(f"worker {worker!r} is not in this run") from None

    def point(self, worker: str) -> int:
        """The Shamir share point of the worker: its ring position plus one."""
        return self.position(worker) + 1

    def neighbours(self, worker: str) -> tuple[str, ...]:
        """The worker's neighbours, nearest first, without the worker itself."""
        here = self.position(worker)
        if self.neighbours_per_worker >= self.size - 1:
            return tuple(w for w in self.order if w != worker)
        found: list[str] = []
        for step in range(1, self.neighbours_per_worker // 2 + 1):
            found.append(self.order[(here - step) % self.size])
            found.append(self.order[(here + step) % self.size])
        return tuple(found)

    def group(self, worker: str) -> tuple[str, ...]:
        """The holders of the worker's shares: itself, then its neighbours."""
        return (worker, *self.neighbours(worker))

    def are_neighbours(self, a: str, b: str) -> bool:
        """Whether a and b share a pairwise mask."""
        if a == b:
            return False
        if self.neighbours_per_worker >= self.size - 1:
            return True
        gap = abs(self.position(a) - self.position(b))
        return min(gap, self.size - gap) <= self.neighbours_per_worker // 2


def build_graph(
    participants: Iterable[str], seed: bytes, neighbours: int
) -> NeighbourGraph:
    """The ring for a run: the same for everyone holding the seed and the ids."""
    workers = sorted(participants)
    if len(set(workers)) != len(workers):
        raise InvalidArgument("participant ids must be unique")
    if any(not worker for worker in workers):
        raise InvalidArgument("participant ids must be non-empty")
    if neighbours < 2 or neighbours % 2:
        raise InvalidArgument(f"neighbours must be even and >= 2, got {neighbours}")

    # A keyed hash of each id orders the ring, so neither the grid's choice of
    # ids nor their spelling decides who ends up next to whom.
    def rank(worker: str) -> bytes:
        return hashlib.sha256(seed + worker.encode()).digest()

    return NeighbourGraph(tuple(sorted(workers, key=rank)), neighbours)
