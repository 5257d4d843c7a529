"""What a worker job tells the app: accepted cycles, rejections, errors, the end."""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import torch

from fedgrid.worker.training import PlanRunner

ACCEPTED = "accepted"
REJECTED = "rejected"
REPORTED = "reported"
ERROR = "error"
DONE = "done"
KINDS = (ACCEPTED, REJECTED, REPORTED, ERROR, DONE)


@dataclass
class CycleAssignment:
    """One accepted cycle: what to train and by when.

    `params` is the checkpoint to start from (the app may change it freely);
    `progress` holds parameters saved by `job.save_progress` before a restart,
    when this cycle was resumed from the state folder.
    """

    job: str
    version: str
    request_key: str
    cycle_id: str
    cycle_number: int
    checkpoint: int
    deadline: float  # unix seconds
    params: dict[str, torch.Tensor]
    plans: dict[str, PlanRunner]
    client_config: dict[str, Any]
    protocols: dict[str, bytes] = field(default_factory=dict)
    progress: dict[str, torch.Tensor] | None = None
    resumed: bool = False


@dataclass(frozen=True)
class Rejection:
    """The grid had no seat; the job asks again after retry_after seconds."""

    reason: str
    message: str
    retry_after: float


@dataclass(frozen=True)
class Event:
    """One thing that happened to a job; data depends on kind."""

    kind: str
    data: Any = None


class EventStream:
    """Async iteration over a job's events, fed from the job's thread.

    It subscribes when created, so events between `job.events()` and the
    first `await` are kept; it ends after `done`, a fatal `error`, or stop.
    """

    def __init__(self) -> None:
        self._items: collections.deque[Event | None] = collections.deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._ended = False

    def push(self, event: Event | None) -> None:
        """Called from the job's thread; None ends the stream."""
        with self._lock:
            self._items.append(event)
            loop, ready = self._loop, self._ready
        if loop is not None and ready is not None and not loop.is_closed():
            loop.call_soon_threadsafe(ready.set)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._ended:
            raise StopAsyncIteration
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
                self._ready = asyncio.Event()
            ready = self._ready
        assert ready is not None
        while True:
            with self._lock:
                if self._items:
                    item = self._items.popleft()
                    break
                ready.clear()
            await ready.wait()
        if item is None:
            self._ended = True
            raise StopAsyncIteration
        return item
