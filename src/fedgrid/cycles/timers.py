"""Background threads: the deadline watcher and the aggregation sweeper."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from fedgrid.cycles.closing import CycleCloser
from fedgrid.cycles.secure import SecureCycles
from fedgrid.errors import FedgridError

logger = logging.getLogger(__name__)


class CycleTimers:
    """Runs in every replica; the Redis scripts make sure one replica wins.

    With `secure`, a third thread closes secure cycles' admissions and
    rounds at their deadlines, on the deadline watcher's interval.
    """

    def __init__(
        self,
        closer: CycleCloser,
        secure: SecureCycles | None = None,
        deadline_interval: float = 0.5,
        sweep_interval: float = 30.0,
        aggregation_timeout: float = 600.0,
    ) -> None:
        self.closer = closer
        self.aggregation_timeout = aggregation_timeout
        self._stopping = threading.Event()
        self._threads = [
            self._thread("deadlines", deadline_interval, closer.close_due_cycles),
            self._thread("sweeper", sweep_interval, self._sweep),
        ]
        if secure is not None:
            self._threads.append(self._thread("secure", deadline_interval, secure.tick))

    def _sweep(self) -> int:
        return self.closer.resend_quiet_aggregations(self.aggregation_timeout)

    def _thread(
        self, name: str, interval: float, tick: Callable[[], int]
    ) -> threading.Thread:
        def loop() -> None:
            while not self._stopping.wait(interval):
                try:
                    tick()
                except FedgridError as exc:
                    logger.warning("[CycleTimers.%s] tick failed error=%s", name, exc)
                except Exception:
                    logger.exception("[CycleTimers.%s] unexpected failure", name)

        return threading.Thread(target=loop, name=f"cycle-{name}", daemon=True)

    def start(self) -> None:
        """Start the threads."""
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the threads to stop and wait for them."""
        self._stopping.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
