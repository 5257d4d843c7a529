"""Wiring of one cycle-manager replica: stores, queue, manager, timers, server."""

from __future__ import annotations

import logging

from fedgrid.config import Settings
from fedgrid.cycles import metrics
from fedgrid.cycles.enqueue import CeleryEnqueuer
from fedgrid.cycles.history import History
from fedgrid.cycles.live_state import LiveState
from fedgrid.cycles.manager import CycleManager
from fedgrid.cycles.timers import CycleTimers
from fedgrid.errors import FedgridError
from fedgrid.grpcserver import GrpcService
from fedgrid.secagg.rounds import SecAggRounds
from fedgrid.v1 import cycle_manager_pb2_grpc as pb_grpc
from fedgrid_cycle_manager.servicer import CycleManagerServicer

logger = logging.getLogger(__name__)

SERVICE_NAME = "fedgrid.v1.CycleManager"
GRPC_THREADS = 32


class CycleManagerReplica:
    """Everything one replica runs; start() serves, stop() releases it all."""

    def __init__(
        self,
        settings: Settings,
        port: int | None = None,
        deadline_interval: float = 0.5,
        sweep_interval: float = 30.0,
        aggregation_timeout: float = 600.0,
    ) -> None:
        self.live = LiveState(settings.redis_url, settings.redis_prefix)
        self.history = History(settings.database_url, connections=GRPC_THREADS)
        self.enqueuer = CeleryEnqueuer(settings.broker_url, settings.aggregation_queue)
        self.rounds = SecAggRounds(settings.redis_url, settings.redis_prefix)
        self.manager = CycleManager(
            self.live, self.history, self.enqueuer, rounds=self.rounds
        )
        self.timers = CycleTimers(
            self.manager.closer,
            secure=self.manager.secure,
            deadline_interval=deadline_interval,
            sweep_interval=sweep_interval,
            aggregation_timeout=aggregation_timeout,
        )
        bind_port = settings.cycle_manager_port if port is None else port
        self.service = GrpcService(
            SERVICE_NAME,
            [
                (
                    pb_grpc.add_CycleManagerServicer_to_server,
                    CycleManagerServicer(self.manager),
                )
            ],
            f"{settings.host}:{bind_port}",
            max_workers=GRPC_THREADS,
        )
        self.address = self.service.address
        self._stopped = False

    def start(self) -> None:
        """Serve rpcs and start the deadline watcher and the sweeper."""
        self.service.start()
        self.timers.start()

    def stop(self, grace: float = 5.0) -> None:
        """Stop the timers, then the server, then close connections; once."""
        if self._stopped:
            return
        self._stopped = True
        self.timers.stop()
        self.service.stop(grace)
        self.enqueuer.close()
        self.history.close()
        self.rounds.close_connection()
        self.live.close()


def track_open_cycles(live: LiveState) -> None:
    """Let the open-cycles gauge read Redis at scrape time."""

    def count() -> float:
        try:
            return float(live.open_cycles())
        except FedgridError:
            return float("nan")

    metrics.OPEN_CYCLES.set_function(count)
