"""The worker's side of secure aggregation: four rounds as a state machine."""

from __future__ import annotations

import logging
import os

import numpy as np
from numpy.typing import NDArray

from fedgrid.secagg import crypto, shamir
from fedgrid.secagg.errors import MalformedMessage, SecAggError
from fedgrid.secagg.params import SecAggParams
from fedgrid.v1 import secagg_pb2

logger = logging.getLogger(__name__)

LIMBS = crypto.SEED_BYTES // shamir.LIMB_BYTES


def pairwise_sign(worker: str, partner: str) -> int:
    """+1 for the lower id of a pair, -1 for the higher: the masks cancel."""
    return 1 if worker < partner else -1


class SecAggWorker:
    """One worker's run: advertise, share keys, masked input, unmask.

    Each step takes the grid's message for that round and returns the
    worker's reply; calling a step out of order raises SecAggError.
    """

    def __init__(self, worker_id: str, params: SecAggParams) -> None:
        params.graph.position(worker_id)
        self.worker_id = worker_id
        self.params = params
        self._step = "advertise"
        self._cipher_key = crypto.new_private_key()
        self._mask_key = crypto.new_private_key()
        self._neighbour_keys: dict[str, tuple[bytes, bytes]] = {}
        self._own_seed_share = np.zeros(0, dtype=np.uint64)
        self._own_key_share = np.zeros(0, dtype=np.uint64)
        self._seed = b""
        self._held: dict[str, tuple[bytes, bytes]] = {}
        self._complaints: set[str] = set()

    def _advance(self, expected: str, following: str) -> None:
        if self._step != expected:
            raise SecAggError(
                f"worker {self.worker_id} is at step {self._step!r}, not {expected!r}"
            )
        self._step = following

    def advertise(self) -> secagg_pb2.PublicKeys:
        """Round 1: the two public keys."""
        self._advance("advertise", "share")
        return secagg_pb2.PublicKeys(
            worker_id=self.worker_id,
            cipher_key=crypto.public_bytes(self._cipher_key),
            mask_key=crypto.public_bytes(self._mask_key),
        )

    def share_keys(self, roster: secagg_pb2.KeyRoster) -> secagg_pb2.ShareKeys:
        """Round 2: shares of the self-mask seed and mask key, one per neighbour."""
        self._advance("share", "masked_input")
        graph, params = self.params.graph, self.params
        for keys in roster.keys:
            if not graph.are_neighbours(self.worker_id, keys.worker_id):
                raise SecAggError(f"the roster lists non-neighbour {keys.worker_id!r}")
            if keys.worker_id in self._neighbour_keys:
                raise SecAggError(f"the roster lists {keys.worker_id!r} twice")
            crypto.load_public(keys.cipher_key)
            crypto.load_public(keys.mask_key)
            self._neighbour_keys[keys.worker_id] = (keys.cipher_key, keys.mask_key)
        if len(self._neighbour_keys) + 1 < params.threshold:
            raise SecAggError(
                f"only {len(self._neighbour_keys)} neighbours advertised keys; the "
                f"threshold {params.threshold} cannot be met"
            )

        # Share both secrets at every holder's point: first ourselves.
        holders = [self.worker_id, *sorted(self._neighbour_keys)]
        self._seed = os.urandom(crypto.SEED_BYTES)
        secrets = np.stack(
            [
                shamir.secret_to_limbs(self._seed),
                shamir.secret_to_limbs(crypto.private_bytes(self._mask_key)),
            ]
        )
        points = [graph.point(holder) for holder in holders]
        shares = shamir.split(secrets, points, params.threshold)
        self._own_seed_share, self._own_key_share = shares[0, 0], shares[1, 0]

        sealed = []
        for index, holder in enumerate(holders[1:], start=1):
            payload = secagg_pb2.SharePayload(
                sender=self.worker_id,
                recipient=holder,
                cycle_id=params.cycle_id,
                seed_share=shamir.encode_share(shares[0, index]),
                key_share=shamir.encode_share(shares[1, index]),
            )
            key = self._share_key(holder)
            associated = params.info("share", self.worker_id, holder)
            sealed.append(
                secagg_pb2.EncryptedShare(
                    sender=self.worker_id,
                    recipient=holder,
                    ciphertext=crypto.seal(
                        key, payload.SerializeToString(), associated
                    ),
                )
            )
        return secagg_pb2.ShareKeys(
            worker_id=self.worker_id,
            seed_commitment=crypto.commitment(
                self._seed, params.info("seed-commitment", self.worker_id)
            ),
            shares=sealed,
        )

    def _share_key(self, peer: str) -> bytes:
        pair = sorted((self.worker_id, peer))
        return crypto.agree(
            self._cipher_key,
            crypto.load_public(self._neighbour_keys[peer][0]),
            self.params.info("share-key", *pair),
        )

    def _open(self, sealed: secagg_pb2.EncryptedShare) -> tuple[bytes, bytes]:
        params = self.params
        associated = params.info("share", sealed.sender, self.worker_id)
        plain = crypto.open_sealed(
            self._share_key(sealed.sender), sealed.ciphertext, associated
        )
        payload = secagg_pb2.SharePayload()
        try:
            payload.ParseFromString(plain)
        except Exception as exc:  # protobuf raises its own DecodeError
            raise MalformedMessage("a share payload does not parse") from exc
        if (
            payload.sender != sealed.sender
            or payload.recipient != self.worker_id
            or payload.cycle_id != params.cycle_id
        ):
            raise MalformedMessage("a share payload names another sender or run")
        shamir.decode_share(payload.seed_share, LIMBS)
        shamir.decode_share(payload.key_share, LIMBS)
        return payload.seed_share, payload.key_share

    def masked_input(
        self,
        bundle: secagg_pb2.ShareBundle,
        values: NDArray[np.floating],
        weight: int,
        rng: np.random.Generator | None = None,
    ) -> secagg_pb2.MaskedInput:
        """Round 3: the quantized input plus the self mask and pairwise masks."""
        self._advance("masked_input", "unmask")
        params = self.params
        if np.size(values) != params.vector_length:
            raise SecAggError(
                f"the input has {np.size(values)} values, the run expects "
                f"{params.vector_length}"
            )

        # Keep every share that opens and names us; complain about the rest.
        for sealed in bundle.shares:
            sender = sealed.sender
            if sender not in self._neighbour_keys or sealed.recipient != self.worker_id:
                continue
            if sender in self._held:
                self._held.pop(sender)
                self._complaints.add(sender)
            if sender in self._complaints:
                continue
            try:
                self._held[sender] = self._open(sealed)
            except MalformedMessage as exc:
                logger.warning(
                    "[SecAggWorker.masked_input] worker=%s sender=%s refused=%s",
                    self.worker_id,
                    sender,
                    exc,
                )
                self._complaints.add(sender)

        words = params.quantizer.encode(values, weight, rng)
        dtype = params.quantizer.dtype
        self_key = crypto.derive(self._seed, params.info("self-mask", self.worker_id))
        words += crypto.keystream(self_key, params.words, dtype)
        for partner in sorted(self._held):
            mask = crypto.keystream(self.pairwise_key(partner), params.words, dtype)
            if pairwise_sign(self.worker_id, partner) > 0:
                words += mask
            else:
                words -= mask
        words &= dtype.type(params.quantizer.modulus_mask)
        return secagg_pb2.MaskedInput(
            worker_id=self.worker_id,
            values=words.astype(dtype.newbyteorder("<")).tobytes(),
            complaints=sorted(self._complaints),
        )

    def pairwise_key(self, partner: str) -> bytes:
        """The PRG key of the mask shared with a neighbour."""
        pair = sorted((self.worker_id, partner))
        return crypto.agree(
            self._mask_key,
            crypto.load_public(self._neighbour_keys[partner][1]),
            self.params.info("pairwise-mask", *pair),
        )

    def unmask(self, request: secagg_pb2.UnmaskRequest) -> secagg_pb2.UnmaskShares:
        """Round 4: seed shares of survivors, key shares of the dropped."""
        self._advance("unmask", "done")
        survivors, dropped = set(request.survivors), set(request.dropped)
        if survivors & dropped:
            raise SecAggError("the grid lists a worker as both survivor and dropped")
        if self.worker_id not in survivors:
            raise SecAggError("the grid does not count this worker's input")
        if len(survivors) < self.params.threshold:
            raise SecAggError(
                f"{len(survivors)} survivors are below the threshold "
                f"{self.params.threshold}; revealing shares would be unsafe"
            )
        seed_shares = [
            secagg_pb2.RevealedShare(
                owner=self.worker_id, share=shamir.encode_share(self._own_seed_share)
            )
        ]
        key_shares = []
        for owner, (seed_share, key_share) in sorted(self._held.items()):
            if owner in survivors:
                seed_shares.append(
                    secagg_pb2.RevealedShare(owner=owner, share=seed_share)
                )
            elif owner in dropped:
                key_shares.append(
                    secagg_pb2.RevealedShare(owner=owner, share=key_share)
                )
        return secagg_pb2.UnmaskShares(
            worker_id=self.worker_id, seed_shares=seed_shares, key_shares=key_shares
        )
