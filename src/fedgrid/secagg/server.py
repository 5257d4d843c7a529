"""The grid's side of secure aggregation: rounds, survivors and unmasking."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fedgrid.secagg import crypto, shamir
from fedgrid.secagg.errors import MalformedMessage, SecAggError, TooFewSurvivors
from fedgrid.secagg.params import SecAggParams
from fedgrid.secagg.unmasking import MaskJob, add_words, mask_total, rebuild
from fedgrid.secagg.worker import LIMBS, pairwise_sign
from fedgrid.v1 import secagg_pb2

logger = logging.getLogger(__name__)

ROUNDS = ("advertise", "share_keys", "masked_input", "unmask", "done")
MAX_SEALED_BYTES = 1024


@dataclass(frozen=True)
class UnmaskPlan:
    """The masked sum and the masks to take off it (shardable across tasks)."""

    masked_sum: NDArray[np.unsignedinteger]
    jobs: tuple[MaskJob, ...]


@dataclass(frozen=True)
class SecAggResult:
    """The exact sum of the survivors' quantized inputs, and who is in it."""

    total: NDArray[np.unsignedinteger]
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]
    excluded: dict[str, str]


class SecAggServer:
    """Collects each round's messages, tracks survivors and unmasks the sum.

    receive_* raises MalformedMessage for a message that cannot be used and
    leaves its sender out; close_* ends a round and raises TooFewSurvivors
    when the run can no longer produce a sum.
    """

    def __init__(self, params: SecAggParams) -> None:
        self.params = params
        self.round = ROUNDS[0]
        self.excluded: dict[str, str] = {}
        self._keys: dict[str, tuple[bytes, bytes]] = {}
        self._alive: set[str] = set()
        self._shared: set[str] = set()
        self._commitments: dict[str, bytes] = {}
        self._sealed: dict[str, list[secagg_pb2.EncryptedShare]] = {}
        self._inputs: dict[str, NDArray[np.unsignedinteger]] = {}
        self._complaints: dict[str, set[str]] = {}
        self._survivors: list[str] = []
        self._needed: list[str] = []
        self._seed_shares: dict[str, dict[int, NDArray[np.uint64]]] = {}
        self._key_shares: dict[str, dict[int, NDArray[np.uint64]]] = {}
        self._revealed: set[str] = set()

    # -- bookkeeping ---------------------------------------------------------

    def _expect(self, round_name: str, sender: str, allowed: Iterable[str]) -> None:
        if self.round != round_name:
            raise SecAggError(f"the run is at round {self.round!r}, not {round_name!r}")
        if sender in self.excluded:
            raise MalformedMessage(f"worker {sender!r} was excluded from this run")
        if sender not in allowed:
            raise MalformedMessage(f"worker {sender!r} is not expected in {round_name}")

    def _exclude(self, sender: str, reason: str) -> MalformedMessage:
        # The round's expectations stay as they were when it opened: the
        # sender simply has nothing counted from now on.
        self.excluded[sender] = reason
        logger.warning(
            "[SecAggServer.%s] cycle=%s worker=%s excluded=%s",
            self.round,
            self.params.cycle_id,
            sender,
            reason,
        )
        return MalformedMessage(f"worker {sender!r}: {reason}")

    def _group_alive(self, worker: str, alive: set[str]) -> int:
        return sum(1 for member in self.params.graph.group(worker) if member in alive)

    def _prune(self, alive: set[str], round_name: str) -> set[str]:
        # Leave out workers whose share group is already below the threshold;
        # each removal can shrink a neighbour's group, so repeat until stable.
        threshold = self.params.threshold
        changed = True
        while changed:
            short = {w for w in alive if self._group_alive(w, alive) < threshold}
            changed = bool(short)
            alive -= short
        if len(alive) < threshold:
            raise TooFewSurvivors(
                f"{round_name}: {len(alive)} of {len(self.params.participants)} "
                f"workers remain with enough live neighbours; the threshold is "
                f"{threshold}"
            )
        return alive

    def _close(self, following: str) -> None:
        self.round = following
        logger.info(
            "[SecAggServer.close] cycle=%s round=%s alive=%d excluded=%d",
            self.params.cycle_id,
            following,
            len(self._alive),
            len(self.excluded),
        )

    # -- round 1: advertise keys ----------------------------------------------

    def receive_keys(self, message: secagg_pb2.PublicKeys) -> None:
        sender = message.worker_id
        self._expect("advertise", sender, self.params.participants)
        if sender in self._keys:
            raise self._exclude(sender, "sent its keys twice")
        try:
            crypto.load_public(message.cipher_key)
            crypto.load_public(message.mask_key)
        except MalformedMessage as exc:
            raise self._exclude(sender, str(exc)) from exc
        used = {key for pair in self._keys.values() for key in pair}
        if (
            message.cipher_key == message.mask_key
            or {
                message.cipher_key,
                message.mask_key,
            }
            & used
        ):
            raise self._exclude(sender, "reused a public key")
        self._keys[sender] = (message.cipher_key, message.mask_key)

    def close_advertise(self) -> dict[str, secagg_pb2.KeyRoster]:
        """End round 1; returns each remaining worker's roster of neighbour keys."""
        alive = self._prune(set(self._keys) - set(self.excluded), "advertise keys")
        self._alive = alive
        self._close("share_keys")
        rosters = {}
        for worker in sorted(alive):
            rosters[worker] = secagg_pb2.KeyRoster(
                keys=[
                    secagg_pb2.PublicKeys(
                        worker_id=peer,
                        cipher_key=self._keys[peer][0],
                        mask_key=self._keys[peer][1],
                    )
                    for peer in self.params.graph.neighbours(worker)
                    if peer in alive
                ]
            )
        return rosters

    # -- round 2: share keys --------------------------------------------------

    def receive_shares(self, message: secagg_pb2.ShareKeys) -> None:
        sender = message.worker_id
        self._expect("share_keys", sender, self._alive)
        if sender in self._sealed:
            raise self._exclude(sender, "sent its shares twice")
        if len(message.seed_commitment) != 32:
            raise self._exclude(sender, "the seed commitment is not 32 bytes")
        expected = {
            peer for peer in self.params.graph.neighbours(sender) if peer in self._alive
        }
        recipients = [share.recipient for share in message.shares]
        if len(recipients) != len(set(recipients)) or set(recipients) != expected:
            raise self._exclude(
                sender, "the shares are not exactly one per live neighbour"
            )
        for share in message.shares:
            if share.sender != sender:
                raise self._exclude(sender, "a share names another sender")
            if not 28 <= len(share.ciphertext) <= MAX_SEALED_BYTES:
                raise self._exclude(sender, "a sealed share has an impossible size")
        self._commitments[sender] = message.seed_commitment
        self._sealed[sender] = list(message.shares)

    def close_shares(self) -> dict[str, secagg_pb2.ShareBundle]:
        """End round 2; returns the sealed shares addressed to each worker."""
        alive = self._prune(set(self._sealed) - set(self.excluded), "share keys")
        self._alive = alive
        self._shared = set(alive)
        self._close("masked_input")
        bundles: dict[str, list[secagg_pb2.EncryptedShare]] = {w: [] for w in alive}
        for sender in sorted(alive):
            for share in self._sealed[sender]:
                if share.recipient in alive:
                    bundles[share.recipient].append(share)
        return {w: secagg_pb2.ShareBundle(shares=s) for w, s in bundles.items()}

    # -- round 3: masked input ------------------------------------------------

    def receive_masked_input(self, message: secagg_pb2.MaskedInput) -> None:
        sender = message.worker_id
        self._expect("masked_input", sender, self._alive)
        if sender in self._inputs:
            raise self._exclude(sender, "sent its input twice")
        quantizer = self.params.quantizer
        dtype = quantizer.dtype
        if len(message.values) != self.params.words * dtype.itemsize:
            raise self._exclude(
                sender,
                f"the masked input is {len(message.values)} bytes, expected "
                f"{self.params.words * dtype.itemsize}",
            )
        words = np.frombuffer(message.values, dtype=dtype)
        if quantizer.bits not in (32, 64) and int(words.max()) > quantizer.modulus_mask:
            raise self._exclude(sender, "the masked input exceeds the modulus")
        neighbours = set(self.params.graph.neighbours(sender)) & self._alive
        complaints = set(message.complaints)
        if not complaints <= neighbours:
            raise self._exclude(sender, "it complains about non-neighbours")
        self._inputs[sender] = words
        self._complaints[sender] = complaints

    def _partners(self, worker: str) -> set[str]:
        # The neighbours whose shares the worker kept: it masked with each.
        neighbours = set(self.params.graph.neighbours(worker)) & self._shared
        return neighbours - self._complaints[worker]

    def _holders(self, owner: str, survivors: set[str]) -> set[str]:
        held = {owner} if owner in survivors else set()
        return held | {
            peer
            for peer in self.params.graph.neighbours(owner)
            if peer in survivors and owner not in self._complaints[peer]
        }

    def close_masked_input(self) -> secagg_pb2.UnmaskRequest:
        """End round 3; returns the survivors and the dropped to unmask."""
        threshold = self.params.threshold
        received = set(self._inputs) - set(self.excluded)
        accused = set().union(*(self._complaints[w] for w in received))
        for worker in sorted(accused & self._alive):
            self.excluded.setdefault(worker, "a neighbour could not use its shares")
            logger.warning(
                "[SecAggServer.masked_input] cycle=%s worker=%s excluded=complaint",
                self.params.cycle_id,
                worker,
            )
        survivors = received - accused
        if len(survivors) < threshold:
            raise TooFewSurvivors(
                f"masked input: {len(survivors)} inputs arrived; the threshold is "
                f"{threshold}"
            )
        needed = {peer for w in survivors for peer in self._partners(w)} - survivors
        for owner in sorted(survivors | needed):
            holders = len(self._holders(owner, survivors))
            if holders < threshold:
                raise TooFewSurvivors(
                    f"masked input: the secrets of worker {owner!r} are held by "
                    f"{holders} survivors; the threshold is {threshold}"
                )
        self._survivors = sorted(survivors)
        self._needed = sorted(needed)
        self._alive = survivors
        self._close("unmask")
        return secagg_pb2.UnmaskRequest(survivors=self._survivors, dropped=self._needed)

    # -- round 4: unmask ------------------------------------------------------

    def receive_unmask(self, message: secagg_pb2.UnmaskShares) -> None:
        sender = message.worker_id
        self._expect("unmask", sender, self._alive)
        if sender in self._revealed:
            raise self._exclude(sender, "revealed its shares twice")
        point = self.params.graph.point(sender)
        parsed: list[tuple[dict[str, dict[int, NDArray[np.uint64]]], str, bytes]] = []
        survivors, needed = set(self._survivors), set(self._needed)
        for revealed, owners, store in (
            (message.seed_shares, survivors, self._seed_shares),
            (message.key_shares, needed, self._key_shares),
        ):
            seen: set[str] = set()
            for item in revealed:
                owner = item.owner
                if owner in seen or owner not in owners:
                    raise self._exclude(
                        sender, f"revealed an unexpected share of {owner!r}"
                    )
                if sender not in self._holders(owner, survivors):
                    raise self._exclude(sender, f"cannot hold a share of {owner!r}")
                seen.add(owner)
                parsed.append((store, owner, item.share))
        try:
            decoded = [(s, o, shamir.decode_share(b, LIMBS)) for s, o, b in parsed]
        except MalformedMessage as exc:
            raise self._exclude(sender, str(exc)) from exc
        for store, owner, share in decoded:
            store.setdefault(owner, {})[point] = share
        self._revealed.add(sender)

    def _check_seed(self, owner: str, seed: bytes) -> bool:
        info = self.params.info("seed-commitment", owner)
        return crypto.commitment(seed, info) == self._commitments[owner]

    def _check_key(self, owner: str, key: bytes) -> bool:
        return crypto.public_bytes(crypto.load_private(key)) == self._keys[owner][1]

    def plan_unmasking(self) -> UnmaskPlan:
        """End round 4: rebuild secrets; returns the masked sum and its masks."""
        if self.round != "unmask":
            raise SecAggError(f"the run is at round {self.round!r}, not 'unmask'")
        threshold = self.params.threshold
        seeds = rebuild(
            {o: self._seed_shares.get(o, {}) for o in self._survivors},
            threshold,
            self._check_seed,
        )
        keys = rebuild(
            {o: self._key_shares.get(o, {}) for o in self._needed},
            threshold,
            self._check_key,
        )
        for owner, found in (*seeds.items(), *keys.items()):
            if found is None:
                raise TooFewSurvivors(
                    f"unmask: the secret of worker {owner!r} cannot be rebuilt from "
                    f"the shares revealed; the threshold is {threshold}"
                )

        jobs = []
        for owner in self._survivors:
            seed = seeds[owner]
            assert seed is not None
            info = self.params.info("self-mask", owner)
            jobs.append(MaskJob(crypto.derive(seed.secret, info), -1))
        for owner in self._needed:
            rebuilt = keys[owner]
            assert rebuilt is not None
            private = crypto.load_private(rebuilt.secret)
            for worker in self._survivors:
                if owner not in self._partners(worker):
                    continue
                peer = crypto.load_public(self._keys[worker][1])
                info = self.params.info("pairwise-mask", *sorted((worker, owner)))
                key = crypto.agree(private, peer, info)
                jobs.append(MaskJob(key, -pairwise_sign(worker, owner)))

        bits = self.params.quantizer.bits
        masked = np.zeros(self.params.words, dtype=self.params.quantizer.dtype)
        for worker in self._survivors:
            masked = add_words(masked, self._inputs[worker], bits)
        self._close("done")
        return UnmaskPlan(masked, tuple(jobs))

    def close_unmask(self) -> SecAggResult:
        """End round 4 in this process: the exact sum of the survivors' inputs."""
        plan = self.plan_unmasking()
        bits = self.params.quantizer.bits
        masks = mask_total(plan.jobs, self.params.words, bits)
        total = add_words(plan.masked_sum, masks, bits)
        return SecAggResult(
            total=total,
            survivors=tuple(self._survivors),
            dropped=tuple(sorted(set(self.params.participants) - set(self._survivors))),
            excluded=dict(self.excluded),
        )
