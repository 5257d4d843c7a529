"""Errors of worker-to-worker channels: refusals, lost peers, bad framing."""

from __future__ import annotations

from fedgrid.worker.errors import WorkerError


class P2PError(WorkerError):
    """Base of the errors peer-to-peer channels raise."""


class SignalingRefused(P2PError):
    """The signaling service refused to let this worker join (code says why)."""


class PeerGone(P2PError):
    """The peer left the room or its connection failed."""


class PeerTimeout(P2PError):
    """A peer did not connect, or did not drain its channel, in time."""


class FramingError(P2PError):
    """A peer sent chunks that do not stitch into a message."""
