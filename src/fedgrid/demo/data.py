"""The digits data set from scikit-learn, split unevenly across workers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TEST_FRACTION = 0.2
FEATURES = 64
CLASSES = 10


@dataclass(frozen=True)
class Partition:
    """One worker's local data: features scaled to [0, 1] and integer labels."""

    features: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 digit images that ship inside scikit-learn (no download)."""
    from sklearn.datasets import load_digits

    features, labels = load_digits(return_X_y=True)
    return (features / 16.0).astype(np.float32), labels.astype(np.int64)


def split(
    workers: int, seed: int = 0, concentration: float = 0.5
) -> tuple[list[Partition], Partition]:
    """Held-out test data plus one partition per worker.

    Each label's training examples are divided among the workers by weights
    drawn from a Dirichlet distribution, so partitions differ both in size
    and in their mix of labels, as data on real devices does.
    """
    features, labels = load_digits_arrays()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    test_count = int(len(labels) * TEST_FRACTION)
    test, train = order[:test_count], order[test_count:]
    shares: list[list[int]] = [[] for _ in range(workers)]
    for label in range(CLASSES):
        ids = train[labels[train] == label]
        weights = rng.dirichlet([concentration] * workers)
        cuts = (np.cumsum(weights) * len(ids)).astype(int)[:-1]
        for worker, chunk in enumerate(np.split(ids, cuts)):
            shares[worker].extend(int(i) for i in chunk)
    partitions = [
        Partition(torch.from_numpy(features[ids]), torch.from_numpy(labels[ids]))
        for ids in (np.array(sorted(share), dtype=np.int64) for share in shares)
    ]
    held_out = Partition(
        torch.from_numpy(features[test]), torch.from_numpy(labels[test])
    )
    return partitions, held_out


def partition(worker: int, workers: int, seed: int = 0) -> Partition:
    """The data of one worker, the same in every process for the same seed."""
    if not 0 <= worker < workers:
        raise ValueError(f"worker index {worker} is outside 0..{workers - 1}")
    return split(workers, seed)[0][worker]


def batches(
    data: Partition, batch_size: int, generator: torch.Generator
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One shuffled epoch in batches; the last batch may be smaller."""
    order = torch.randperm(len(data), generator=generator)
    return [
        (
            data.features[order[i : i + batch_size]],
            data.labels[order[i : i + batch_size]],
        )
        for i in range(0, len(data), batch_size)
    ]
