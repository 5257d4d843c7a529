"""A worker's secure aggregation run over the gateway: four rounds, in order.

The first two rounds (keys, sealed shares) run in a thread of their own as
soon as the cycle is accepted, while the app trains; the report then sends
the masked diff and the unmasking shares. The diff never leaves the worker
unmasked. With `transport: webrtc` the sealed shares go to the neighbours
over data channels instead, and the grid gets their digests (mesh_shares).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import torch
from google.protobuf.message import DecodeError, Message
from numpy.typing import NDArray

from fedgrid.errors import FedgridError
from fedgrid.privacy.clipping import clip_diff
from fedgrid.secagg.averaging import diff_vector
from fedgrid.secagg.params import SecAggParams
from fedgrid.secagg.worker import SecAggWorker
from fedgrid.v1 import secagg_pb2
from fedgrid.worker.client import API, GridClient
from fedgrid.worker.errors import ProtocolError, WorkerError
from fedgrid.worker.mesh_shares import MeshShares, digested
from fedgrid.worker.p2p import P2PConfig

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
PROTOBUF = "application/x-protobuf"
MAX_POLL_SECONDS = 2.0
# Longest wait for a share the grid counted but the mesh has not delivered.
SHARE_WAIT_SECONDS = 10.0


class SecureAggregationFailed(WorkerError):
    """The cycle's secure aggregation run cannot go on for this worker."""


def mesh_for(
    info: Mapping[str, Any], token: str | None, job_id: str, config: P2PConfig | None
) -> MeshShares | None:
    """The peers' room for an accepted cycle whose shares travel over WebRTC."""
    if info["secure_aggregation"].get("transport") != "webrtc":
        return None
    url = info["client_config"].get("signaling_url")
    if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
        raise ProtocolError(
            "the job shares secure aggregation keys over WebRTC but its "
            "client_config has no signaling_url (ws:// or wss://) to meet peers at"
        )
    if not token or not job_id:
        raise ProtocolError("the session has no token or job id to join peers with")
    return MeshShares(url, token, job_id, str(info["cycle_id"]), config)


class GatewayRounds:
    """Round messages to and from the gateway for one request key."""

    def __init__(
        self, client: GridClient, request_key: str, stop: threading.Event
    ) -> None:
        self.client = client
        self.request_key = request_key
        self._stop = stop

    def post(self, round_name: str, message: Message) -> None:
        """Send this worker's message for a round."""
        self.client.request(
            "POST",
            f"{API}/secagg/{round_name}",
            params={"request_key": self.request_key},
            data=message.SerializeToString(),
            headers={"Content-Type": PROTOBUF},
        )

    def fetch(self, round_name: str, kind: type[M], deadline: float) -> M:
        """Wait for the grid's message after a round closes (or the setup)."""
        while True:
            response = self.client.request(
                "GET",
                f"{API}/secagg/{round_name}",
                params={"request_key": self.request_key},
            )
            if response.status_code == 200:
                message = kind()
                try:
                    message.ParseFromString(response.content)
                except DecodeError as exc:
                    raise ProtocolError(
                        f"the grid's {round_name} answer does not parse"
                    ) from exc
                return message
            pending = response.json() if response.content else {}
            wait = float(pending.get("retry_after", 0.5))
            if time.time() + wait > deadline:
                raise SecureAggregationFailed(
                    f"the {round_name} answer did not come before the cycle's deadline",
                    code="secagg_timeout",
                )
            if self._stop.wait(min(max(wait, 0.05), MAX_POLL_SECONDS)):
                raise SecureAggregationFailed("stopped", code="stopped")


class SecureRun:
    """One worker's run in one cycle: prepare in the background, then submit."""

    def __init__(
        self,
        worker_id: str,
        terms: Mapping[str, Any],
        privacy: Mapping[str, Any] | None,
        rounds: GatewayRounds,
        deadline: float,
        mesh: MeshShares | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.terms = dict(terms)
        self.privacy = dict(privacy or {})
        self.rounds = rounds
        self.deadline = deadline
        self.mesh = mesh
        self.params: SecAggParams | None = None
        self._worker: SecAggWorker | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._prepare, name=f"fedgrid-secagg-{worker_id}", daemon=True
        )
        self.shared = threading.Event()

    def start(self) -> SecureRun:
        """Advertise keys and share them in the background."""
        self._thread.start()
        return self

    def _prepare(self) -> None:
        try:
            if self.mesh is not None:
                # Joining first lets the channels open during the first round.
                self.mesh.join(self.worker_id, self.deadline - time.time())
            setup = self.rounds.fetch("setup", secagg_pb2.SecAggSetup, self.deadline)
            self.params = SecAggParams.from_setup(setup)
            worker = SecAggWorker(self.worker_id, self.params)
            self._worker = worker
            self.rounds.post("advertise", worker.advertise())
            roster = self.rounds.fetch("advertise", secagg_pb2.KeyRoster, self.deadline)
            shares = worker.share_keys(roster)
            if self.mesh is not None:
                self.mesh.send(shares, self.deadline - time.time())
                shares = digested(shares)
            self.rounds.post("share_keys", shares)
            self.shared.set()
            logger.info(
                "[SecureRun.prepare] cycle=%s worker=%s keys shared",
                self.params.cycle_id,
                self.worker_id,
            )
        except (FedgridError, OSError) as exc:
            self._error = exc
            logger.warning(
                "[SecureRun.prepare] worker=%s run stopped: %s", self.worker_id, exc
            )
            self.close()

    def input_of(
        self,
        original: Mapping[str, torch.Tensor],
        diff: Mapping[str, torch.Tensor],
        sample_count: int,
    ) -> tuple[NDArray[np.float64], int]:
        """The diff as the run's vector (clipped under DP) and its weight."""
        clipped = dict(diff)
        if self.privacy:
            # The DP clipping norm bounds each worker's influence on the sum.
            clipped = clip_diff(diff, float(self.privacy["clipping_norm"]))
        unit = self.terms.get("weighting") == "unit"
        return diff_vector(original, clipped), 1 if unit else int(sample_count)

    def submit(self, values: NDArray[np.float64], weight: int) -> None:
        """Masked input, then the unmasking shares; raises when the run failed."""
        self._thread.join(max(0.0, self.deadline - time.time()))
        if self._error is not None:
            raise SecureAggregationFailed(
                f"secure aggregation did not start: {self._error}", code="secagg"
            ) from self._error
        worker = self._worker
        if worker is None or not self.shared.is_set():
            raise SecureAggregationFailed(
                "the keys were not shared before the deadline", code="secagg_timeout"
            )
        try:
            bundle = self.rounds.fetch(
                "share_keys", secagg_pb2.ShareBundle, self.deadline
            )
            if self.mesh is not None:
                bundle = self._from_mesh(self.mesh, bundle)
            self.rounds.post(
                "masked_input", worker.masked_input(bundle, values, weight)
            )
            request = self.rounds.fetch(
                "masked_input", secagg_pb2.UnmaskRequest, self.deadline
            )
            self.rounds.post("unmask", worker.unmask(request))
        except WorkerError:
            raise
        except FedgridError as exc:
            raise SecureAggregationFailed(str(exc), code="secagg") from exc
        finally:
            self.close()

    def _from_mesh(
        self, mesh: MeshShares, relayed: secagg_pb2.ShareBundle
    ) -> secagg_pb2.ShareBundle:
        """The sealed shares behind the digests the grid relayed.

        A share that did not arrive, or differs from its digest, is given
        empty: it cannot open, so this worker complains about its sender,
        exactly as about a share relayed by the grid that does not open.
        """
        wanted = {share.sender: share.ciphertext for share in relayed.shares}
        wait = min(SHARE_WAIT_SECONDS, self.deadline - time.time())
        found = mesh.collect(self.worker_id, wanted, wait)
        mesh.close()
        return secagg_pb2.ShareBundle(
            shares=[
                found.get(share.sender)
                or secagg_pb2.EncryptedShare(
                    sender=share.sender, recipient=self.worker_id
                )
                for share in relayed.shares
            ]
        )

    def close(self) -> None:
        """Leave the peers' room, if any; the run keeps its state."""
        if self.mesh is not None:
            self.mesh.close()
