"""A worker that joins a room and then only keeps its connection: for liveness tests.

Usage: python -m tests.signaling.idle_client URL TOKEN JOB CYCLE PROTOCOL
"""

from __future__ import annotations

import asyncio
import json
import sys

from websockets.asyncio.client import connect


async def main(url: str, token: str, job: str, cycle: str, protocol: str) -> None:
    async with connect(url, proxy=None) as connection:
        join = {"type": "join", "token": token, "job_id": job, "cycle_id": cycle}
        await connection.send(json.dumps({**join, "protocol": protocol}))
        print(await connection.recv(), flush=True)
        await connection.wait_closed()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
