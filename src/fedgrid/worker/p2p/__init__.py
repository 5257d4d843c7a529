"""Worker-to-worker data channels over WebRTC, set up through signaling."""

from fedgrid.worker.p2p.config import IceServer, P2PConfig
from fedgrid.worker.p2p.errors import (
    FramingError,
    P2PError,
    PeerGone,
    PeerTimeout,
    SignalingRefused,
)
from fedgrid.worker.p2p.mesh import PeerMesh
from fedgrid.worker.p2p.transport import Message, Transport

__all__ = [
    "FramingError",
    "IceServer",
    "Message",
    "P2PConfig",
    "P2PError",
    "PeerGone",
    "PeerMesh",
    "PeerTimeout",
    "SignalingRefused",
    "Transport",
]
