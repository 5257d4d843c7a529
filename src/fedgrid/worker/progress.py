"""A job's training progress on local disk, so a restarted worker can resume."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fedgrid.errors import InvalidArgument
from fedgrid.tensors import encode_state_stream, load_state_stream

ASSIGNMENT_FILE = "assignment.json"
CHECKPOINT_FILE = "checkpoint.state"
PROGRESS_FILE = "progress.state"
PLANS_DIR = "plans"
PROTOCOLS_DIR = "protocols"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def folder_name(name: str, version: str | None) -> str:
    """A file-system-safe folder name for one job of one worker."""
    label = f"{name}@{version or 'newest'}"
    return _SAFE.sub("_", label)


def _write_atomic(path: Path, chunks: Any, private: bool = False) -> None:
    """Write then rename, so a crash never leaves half a file behind."""
    temporary = path.with_name(path.name + ".part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(temporary, flags, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class ProgressStore:
    """Files of one job's current cycle: assignment (JSON), model and plans.

    Tensors are stored as framed state streams and metadata as JSON; nothing
    is pickled. The assignment file holds the session token, so it is
    written readable by its owner only.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _ensure(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / PLANS_DIR).mkdir(exist_ok=True)
        (self.folder / PROTOCOLS_DIR).mkdir(exist_ok=True)

    def save_cycle(
        self,
        assignment: Mapping[str, Any],
        checkpoint: Mapping[str, torch.Tensor],
        plans: Mapping[str, bytes],
        protocols: Mapping[str, bytes],
    ) -> None:
        """Keep everything a new process needs to finish this cycle."""
        self.clear()
        self._ensure()
        _write_atomic(self.folder / CHECKPOINT_FILE, encode_state_stream(checkpoint))
        for name, blob in plans.items():
            _write_atomic(self.folder / PLANS_DIR / _file_of(name), [blob])
        for name, blob in protocols.items():
            _write_atomic(self.folder / PROTOCOLS_DIR / _file_of(name), [blob])
        # The assignment goes last: its presence marks a complete cycle.
        text = json.dumps(dict(assignment), sort_keys=True).encode()
        _write_atomic(self.folder / ASSIGNMENT_FILE, [text], private=True)

    def load_assignment(self) -> dict[str, Any] | None:
        """The saved assignment, or None when there is none (or it is damaged)."""
        path = self.folder / ASSIGNMENT_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def load_checkpoint(self) -> dict[str, torch.Tensor]:
        """The checkpoint downloaded for the saved cycle."""
        with open(self.folder / CHECKPOINT_FILE, "rb") as handle:
            return load_state_stream(handle)

    def load_blobs(self, kind: str, names: list[str]) -> dict[str, bytes]:
        """Saved plan or protocol bytes by name."""
        folder = self.folder / (PLANS_DIR if kind == "plans" else PROTOCOLS_DIR)
        return {name: (folder / _file_of(name)).read_bytes() for name in names}

    def save_progress(self, params: Mapping[str, torch.Tensor]) -> None:
        """Keep the app's partially trained parameters."""
        if not (self.folder / ASSIGNMENT_FILE).exists():
            raise InvalidArgument("there is no cycle in progress to save")
        detached = {name: tensor.detach() for name, tensor in params.items()}
        _write_atomic(self.folder / PROGRESS_FILE, encode_state_stream(detached))

    def load_progress(self) -> dict[str, torch.Tensor] | None:
        """The last saved partial parameters, if any."""
        path = self.folder / PROGRESS_FILE
        if not path.exists():
            return None
        with open(path, "rb") as handle:
            return load_state_stream(handle)

    def clear(self) -> None:
        """Forget the current cycle (reported, refused or past its deadline)."""
        (self.folder / ASSIGNMENT_FILE).unlink(missing_ok=True)
        if self.folder.exists():
            shutil.rmtree(self.folder)


def _file_of(name: str) -> str:
    return _SAFE.sub("_", name) or "_"
