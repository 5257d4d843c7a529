"""Entry point: `python -m fedgrid_signaling` serves WebSocket signaling."""

from __future__ import annotations

import asyncio
import logging
import signal

from fedgrid.config import Settings
from fedgrid.errors import ConfigError, FedgridError
from fedgrid.logs import setup_logging
from fedgrid_signaling.server import serve

logger = logging.getLogger("fedgrid_signaling")


def main() -> None:
    """Read settings, serve until SIGTERM or SIGINT."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise SystemExit(f"fedgrid signaling: {exc}") from exc
    setup_logging(settings.log_level, settings.log_format)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, stop)

    try:
        asyncio.run(run())
    except FedgridError as exc:
        raise SystemExit(f"fedgrid signaling: {exc}") from exc


if __name__ == "__main__":
    main()
