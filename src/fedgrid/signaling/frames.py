"""The JSON frames of the signaling protocol: parsing, validation and building."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# Types a client may send once it has joined, each relayed to one named peer.
RELAYED_TYPES = ("offer", "answer", "candidate")

_ID_PATTERN = re.compile(r"[A-Za-z0-9._:+@-]{1,128}")
_MAX_PEER_ID_CHARS = 256
_CANDIDATE_KEYS = {"candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"}


class FrameError(Exception):
    """A frame the server refuses; code and message go back in an error frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RoomName:
    """A room: one protocol run of one cycle of one job."""

    job_id: str
    cycle_id: str
    protocol: str

    @property
    def key(self) -> str:
        """The room's part of Redis keys and channel names."""
        return f"{self.job_id}/{self.cycle_id}/{self.protocol}"

    def as_json(self) -> dict[str, str]:
        """The room as the joined frame shows it."""
        return {
            "job_id": self.job_id,
            "cycle_id": self.cycle_id,
            "protocol": self.protocol,
        }


@dataclass(frozen=True)
class JoinFrame:
    """The first frame of every connection: who the worker is and where it goes."""

    token: str
    room: RoomName


@dataclass(frozen=True)
class RelayFrame:
    """An offer, answer or ICE candidate for one peer of the same room."""

    type: str
    to: str
    body: dict[str, Any]

    def relayed(self, sender: str) -> dict[str, Any]:
        """The frame as the addressed peer receives it, naming the sender."""
        return {"type": self.type, "from": sender, **self.body}


@dataclass(frozen=True)
class LeaveFrame:
    """The worker leaves its room and the server closes the connection."""


ClientFrame = JoinFrame | RelayFrame | LeaveFrame


def parse_client_frame(raw: str | bytes) -> ClientFrame:
    """Decode and validate one frame from a worker, or raise FrameError."""
    if isinstance(raw, bytes):
        raise FrameError("bad_frame", "send JSON in text frames, not binary frames")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise FrameError("bad_frame", "the frame is not valid JSON") from exc
    if not isinstance(data, dict):
        raise FrameError("bad_frame", "a frame must be a JSON object")

    kind = data.get("type")
    if kind == "join":
        return _parse_join(data)
    if kind in RELAYED_TYPES:
        return _parse_relay(str(kind), data)
    if kind == "leave":
        return LeaveFrame()
    raise FrameError(
        "bad_frame",
        "the frame's type must be one of join, offer, answer, candidate, leave",
    )


def _parse_join(data: dict[str, Any]) -> JoinFrame:
    token = data.get("token")
    if not isinstance(token, str) or not token:
        raise FrameError("bad_frame", "join needs the session token as 'token'")
    values = {}
    for field in ("job_id", "cycle_id", "protocol"):
        value = data.get(field)
        if not isinstance(value, str) or not _ID_PATTERN.fullmatch(value):
            raise FrameError(
                "bad_frame",
                f"join needs '{field}': 1 to 128 characters of letters, digits "
                "and . _ : + @ -",
            )
        values[field] = value
    return JoinFrame(token=token, room=RoomName(**values))


def _parse_relay(kind: str, data: dict[str, Any]) -> RelayFrame:
    to = data.get("to")
    if not isinstance(to, str) or not 0 < len(to) <= _MAX_PEER_ID_CHARS:
        raise FrameError("bad_frame", f"{kind} needs the peer's id as 'to'")
    if kind == "candidate":
        return RelayFrame(kind, to, {"candidate": _candidate(data.get("candidate"))})
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp:
        raise FrameError("bad_frame", f"{kind} needs the session description as 'sdp'")
    return RelayFrame(kind, to, {"sdp": sdp})


def _candidate(value: Any) -> dict[str, Any] | None:
    """An ICE candidate object; null marks the end of a peer's candidates."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("candidate"), str):
        raise FrameError(
            "bad_frame",
            "candidate needs 'candidate': null or an object with a 'candidate' string",
        )
    unknown = set(value) - _CANDIDATE_KEYS
    if unknown:
        raise FrameError(
            "bad_frame", f"unknown candidate fields: {', '.join(sorted(unknown))}"
        )
    mid, index = value.get("sdpMid"), value.get("sdpMLineIndex")
    if mid is not None and not isinstance(mid, str):
        raise FrameError("bad_frame", "candidate's sdpMid must be a string or null")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
        raise FrameError("bad_frame", "candidate's sdpMLineIndex must be an integer")
    return {key: value[key] for key in _CANDIDATE_KEYS if key in value}


def encode(frame: dict[str, Any]) -> str:
    """One server frame as compact JSON text."""
    return json.dumps(frame, separators=(",", ":"))


def error_frame(code: str, message: str) -> str:
    """The frame that tells a worker why its last frame was refused."""
    return encode({"type": "error", "error": code, "message": message})


def joined_frame(room: RoomName, peer_id: str, peers: list[str]) -> str:
    """The answer to a successful join: the worker's id and who is there."""
    return encode(
        {"type": "joined", "room": room.as_json(), "peer_id": peer_id, "peers": peers}
    )


def peer_event_frame(kind: str, peer_id: str) -> str:
    """peer_joined or peer_left, naming the peer."""
    return encode({"type": kind, "peer": peer_id})
