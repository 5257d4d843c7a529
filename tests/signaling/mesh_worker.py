"""A mesh worker in its own process, so tests can kill it in the middle of a send.

Usage: python -m tests.signaling.mesh_worker URL TOKEN ROOM_JSON TARGET BYTES
"""

from __future__ import annotations

import asyncio
import json
import sys

from fedgrid.worker.p2p import P2PConfig, PeerMesh


async def main(url: str, token: str, room: str, target: str, size: int) -> None:
    mesh = await PeerMesh.join(
        url, token, **json.loads(room), config=P2PConfig.loopback()
    )
    await mesh.wait_for_peers(2, timeout=60)
    await mesh.send(target, b"starting")
    print("sending", flush=True)
    await mesh.send(target, bytes(size))
    await mesh.close()


if __name__ == "__main__":
    url, token, room, target, size = sys.argv[1:6]
    asyncio.run(main(url, token, room, target, int(size)))
