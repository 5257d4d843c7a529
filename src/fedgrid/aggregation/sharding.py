"""Partial sums of large cycles: where shards write them and how they come back."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

from fedgrid.averaging import ModelLayout, WeightedSum
from fedgrid.errors import InvalidArgument, NotFound, Unavailable
from fedgrid.objectstore import ObjectStore


@dataclass(frozen=True)
class Shard:
    """A contiguous slice of a cycle's reports (in ListReports order)."""

    index: int
    start: int
    stop: int


def split(report_count: int, shard_size: int) -> list[Shard]:
    """Cut report_count reports into shards of at most shard_size."""
    if shard_size < 1:
        raise InvalidArgument(f"shard_size must be at least 1, got {shard_size}")
    return [
        Shard(index, start, min(start + shard_size, report_count))
        for index, start in enumerate(range(0, report_count, shard_size))
    ]


def sums_key(cycle_id: str, index: int) -> str:
    """Object key of one shard's summed tensors (derived from ids only)."""
    return f"aggregation/{cycle_id}/shard-{index:05d}.sums"


def meta_key(cycle_id: str, index: int) -> str:
    """Object key of one shard's weights, counts and exclusions (JSON)."""
    return f"aggregation/{cycle_id}/shard-{index:05d}.json"


def write_partial(
    store: ObjectStore,
    cycle_id: str,
    index: int,
    partial: WeightedSum,
    chunk_bytes: int,
) -> None:
    """Store a shard's sum; the JSON goes last, so its presence means complete."""
    store.put(sums_key(cycle_id, index), partial.encode(chunk_bytes))
    meta = json.dumps(partial.meta(), allow_nan=False).encode()
    store.put(meta_key(cycle_id, index), [meta])


def _read_all(chunks: Iterator[bytes]) -> bytes:
    return b"".join(chunks)


def read_partials(
    store: ObjectStore, cycle_id: str, layout: ModelLayout, count: int
) -> WeightedSum:
    """Fold every shard's partial sum into one; Unavailable if one is missing."""
    total = WeightedSum(layout)
    for index in range(count):
        try:
            meta = json.loads(_read_all(store.get(meta_key(cycle_id, index))))
        except NotFound as exc:
            raise Unavailable(
                f"partial sum {index} of cycle {cycle_id} is not written yet"
            ) from exc
        sums = _read_all(store.get(sums_key(cycle_id, index)))
        total.merge(WeightedSum.decode(layout, io.BytesIO(sums), meta))
    return total


def delete_partials(store: ObjectStore, cycle_id: str, count: int) -> list[str]:
    """Remove a cycle's partial sums; return the keys that could not be deleted."""
    keys = [sums_key(cycle_id, i) for i in range(count)]
    keys += [meta_key(cycle_id, i) for i in range(count)]
    return store.delete_quietly(keys)
