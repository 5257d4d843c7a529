"""Entry point: `python -m fedgrid_cycle_manager` serves the cycle manager."""

from __future__ import annotations

import logging

from fedgrid import db
from fedgrid.config import Settings
from fedgrid.errors import FedgridError
from fedgrid.grpcserver import run_service
from fedgrid.logs import setup_logging
from fedgrid_cycle_manager.service import CycleManagerReplica, track_open_cycles

logger = logging.getLogger("fedgrid_cycle_manager")


def main() -> None:
    """Check the schema, serve until SIGTERM or SIGINT, then stop the timers."""
    try:
        settings = Settings.from_env()
        setup_logging(settings.log_level, settings.log_format)
        db.check_schema(settings.database_url)
        replica = CycleManagerReplica(settings)
    except FedgridError as exc:
        raise SystemExit(f"fedgrid cycle manager: {exc}") from exc
    track_open_cycles(replica.live)
    replica.timers.start()
    try:
        run_service(replica.service, settings.cycle_manager_metrics_port, settings.host)
    finally:
        replica.timers.stop()
        replica.enqueuer.close()
        replica.history.close()
        replica.rounds.close_connection()
        replica.live.close()


if __name__ == "__main__":
    main()
