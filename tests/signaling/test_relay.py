"""The signaling service over real WebSockets: rooms, relays and replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fedgrid.gateway.sessions import SessionIssuer
from tests.signaling.conftest import Frame, RawClient, Replica


def test_peers_learn_who_is_there_and_who_joins_and_leaves(
    start_replica: Callable[..., Replica],
    issuer: SessionIssuer,
    room: dict[str, str],
) -> None:
    replica = start_replica()

    async def scenario() -> tuple[Frame, Frame, Frame, Frame]:
        alice, bob = (
            await RawClient.open(replica.url),
            await RawClient.open(replica.url),
        )
        first = await alice.join(issuer.issue("alice", room["job_id"]), room)
        second = await bob.join(issuer.issue("bob", room["job_id"]), room)
        joined = await alice.frame()
        await bob.close()
        left = await alice.frame()
        await alice.close()
        return first, second, joined, left

    first, second, joined, left = asyncio.run(scenario())

    assert first["type"] == "joined" and first["peer_id"] == "alice"
    assert first["peers"] == []
    assert first["room"] == room
    assert second["peer_id"] == "bob" and second["peers"] == ["alice"]
    assert joined == {"type": "peer_joined", "peer": "bob"}
    assert left == {"type": "peer_left", "peer": "bob"}


def test_offers_answers_and_candidates_cross_replicas(
    start_replica: Callable[..., Replica],
    issuer: SessionIssuer,
    room: dict[str, str],
) -> None:
    one, two = start_replica(), start_replica()
    candidate = {
        "candidate": "candidate:1 1 UDP 1 127.0.0.1 5000 typ host",
        "sdpMid": "0",
    }

    async def scenario() -> list[Frame]:
        alice, bob = await RawClient.open(one.url), await RawClient.open(two.url)
        await alice.join(issuer.issue("alice", room["job_id"]), room)
        await bob.join(issuer.issue("bob", room["job_id"]), room)
        seen = [await alice.frame()]  # bob joined, told by the other replica
        await alice.send({"type": "offer", "to": "bob", "sdp": "v=0 offer"})
        seen.append(await bob.frame())
        await bob.send({"type": "answer", "to": "alice", "sdp": "v=0 answer"})
        seen.append(await alice.frame())
        await bob.send({"type": "candidate", "to": "alice", "candidate": candidate})
        seen.append(await alice.frame())
        await alice.close()
        seen.append(await bob.frame())
        await bob.close()
        return seen

    seen = asyncio.run(scenario())

    assert seen == [
        {"type": "peer_joined", "peer": "bob"},
        {"type": "offer", "from": "alice", "sdp": "v=0 offer"},
        {"type": "answer", "from": "bob", "sdp": "v=0 answer"},
        {"type": "candidate", "from": "bob", "candidate": candidate},
        {"type": "peer_left", "peer": "alice"},
    ]


def test_a_peer_in_another_room_cannot_be_addressed(
    start_replica: Callable[..., Replica],
    issuer: SessionIssuer,
    room: dict[str, str],
) -> None:
    replica = start_replica()
    other_room = {**room, "cycle_id": room["cycle_id"] + "-other"}

    async def scenario() -> tuple[Frame, Frame]:
        alice = await RawClient.open(replica.url)
        victim, roommate = (
            await RawClient.open(replica.url),
            await RawClient.open(replica.url),
        )
        await alice.join(issuer.issue("alice", room["job_id"]), room)
        await victim.join(issuer.issue("victim", room["job_id"]), other_room)
        await roommate.join(issuer.issue("roommate", room["job_id"]), other_room)
        await victim.frame()  # roommate joined

        await alice.send({"type": "offer", "to": "victim", "sdp": "v=0 intrusion"})
        refusal = await alice.frame()
        # Alice's frame was handled before this marker was sent, so any relay
        # of it would reach the victim first.
        await roommate.send({"type": "offer", "to": "victim", "sdp": "v=0 marker"})
        first_to_victim = await victim.frame()
        for client in (alice, victim, roommate):
            await client.close()
        return refusal, first_to_victim

    refusal, first_to_victim = asyncio.run(scenario())

    assert refusal["type"] == "error" and refusal["error"] == "unknown_peer"
    assert first_to_victim == {"type": "offer", "from": "roommate", "sdp": "v=0 marker"}


def test_garbage_frames_get_error_frames_and_reach_no_peer(
    start_replica: Callable[..., Replica],
    issuer: SessionIssuer,
    room: dict[str, str],
) -> None:
    replica = start_replica(signaling_max_message_bytes=4096)
    garbage: list[str | bytes | Frame] = [
        "not json at all",
        b"\x00\x01binary",
        "[1, 2, 3]",
        {"type": "shout", "to": "bob"},
        {"type": "offer", "to": "bob"},
        {"type": "offer", "sdp": "v=0"},
        {"type": "candidate", "to": "bob", "candidate": {"candidate": 5}},
        {"type": "candidate", "to": "bob", "candidate": {"candidate": "c", "x": 1}},
        {"type": "offer", "to": "bob", "sdp": "v=0" + "x" * 5000},
        {"type": "offer", "to": "alice", "sdp": "v=0 to myself"},
        {"type": "join", "token": "t", **room},
    ]

    async def scenario() -> tuple[list[Frame], Frame, Frame]:
        early = await RawClient.open(replica.url)
        await early.send({"type": "offer", "to": "bob", "sdp": "v=0"})
        before_join = await early.frame()
        await early.close()

        alice, bob = (
            await RawClient.open(replica.url),
            await RawClient.open(replica.url),
        )
        await alice.join(issuer.issue("alice", room["job_id"]), room)
        await bob.join(issuer.issue("bob", room["job_id"]), room)
        await alice.frame()  # bob joined
        errors = []
        for frame in garbage:
            await alice.send(frame)
            errors.append(await alice.frame())
        await alice.send({"type": "offer", "to": "bob", "sdp": "v=0 fine"})
        first_to_bob = await bob.frame()
        await alice.close()
        await bob.close()
        return errors, before_join, first_to_bob

    errors, before_join, first_to_bob = asyncio.run(scenario())

    assert before_join["error"] == "not_joined"
    codes = [error["error"] for error in errors]
    assert all(error["type"] == "error" and error["message"] for error in errors)
    assert codes == ["bad_frame"] * 8 + ["too_large", "unknown_peer", "already_joined"]
    assert first_to_bob == {"type": "offer", "from": "alice", "sdp": "v=0 fine"}


def test_unauthorised_tokens_are_refused(
    start_replica: Callable[..., Replica],
    issuer: SessionIssuer,
    room: dict[str, str],
) -> None:
    replica = start_replica()
    forged = SessionIssuer("another-secret-of-32-characters!").issue("eve", "j")
    expired = SessionIssuer.__new__(SessionIssuer)
    expired.__init__(  # type: ignore[misc]
        issuer._secret,  # type: ignore[attr-defined]
        ttl_seconds=-10,
    )
    tokens = {
        "forged": forged,
        "expired": expired.issue("eve", room["job_id"]),
        "garbled": "not.a.token",
        "other job": issuer.issue("eve", "some-other-job"),
    }

    async def attempt(token: str) -> tuple[Frame, int | None]:
        client = await RawClient.open(replica.url)
        answer = await client.join(token, room)
        await client.connection.wait_closed()
        return answer, client.connection.close_code

    async def scenario() -> dict[str, tuple[Frame, int | None]]:
        return {name: await attempt(token) for name, token in tokens.items()}

    results = asyncio.run(scenario())

    assert results["forged"][0]["error"] == "unauthenticated"
    assert results["garbled"][0]["error"] == "unauthenticated"
    assert results["expired"][0]["error"] == "unauthenticated"
    assert "expired" in results["expired"][0]["message"]
    assert results["other job"][0]["error"] == "forbidden"
    assert {code for _, code in results.values()} == {1008}


def test_room_size_rate_and_duplicate_joins_are_limited(
    start_replica: Callable[..., Replica],
    issuer: SessionIssuer,
    room: dict[str, str],
) -> None:
    replica = start_replica(signaling_room_size=2, signaling_messages_per_second=5)
    job = room["job_id"]

    async def scenario() -> tuple[Frame, Frame, list[str], list[str]]:
        alice, bob = (
            await RawClient.open(replica.url),
            await RawClient.open(replica.url),
        )
        await alice.join(issuer.issue("alice", job), room)
        await bob.join(issuer.issue("bob", job), room)
        await alice.frame()  # bob joined
        twin = await RawClient.open(replica.url)
        duplicate = await twin.join(issuer.issue("alice", job), room)
        carol = await RawClient.open(replica.url)
        full = await carol.join(issuer.issue("carol", job), room)

        for number in range(30):  # far above 5 a second with bursts of 10
            await alice.send({"type": "offer", "to": "bob", "sdp": f"v=0 {number}"})
        # Each frame was either relayed to bob or refused to alice.
        refused: list[str] = []
        relayed: list[str] = []

        async def drain(client: RawClient, into: list[str]) -> None:
            while len(refused) + len(relayed) < 30:
                frame = await client.frame(timeout=20)
                into.append(frame.get("error") or frame.get("sdp", ""))

        readers = [
            asyncio.create_task(drain(alice, refused)),
            asyncio.create_task(drain(bob, relayed)),
        ]
        _, pending = await asyncio.wait(
            readers, timeout=30, return_when=asyncio.FIRST_COMPLETED
        )
        for reader in pending:
            reader.cancel()
        await alice.close()
        await bob.close()
        return duplicate, full, refused, relayed

    duplicate, full, refused, relayed = asyncio.run(scenario())

    assert duplicate["error"] == "already_in_room"
    assert full["error"] == "room_full"
    assert len(refused) + len(relayed) == 30
    assert set(refused) == {"rate_limited"}
    # A burst of 10, less the join frame, plus what refilled meanwhile.
    assert 9 <= len(relayed) <= 14
    assert relayed[:9] == [f"v=0 {n}" for n in range(9)]


def test_a_silent_connection_must_join_in_time(
    start_replica: Callable[..., Replica],
) -> None:
    replica = start_replica()

    async def scenario() -> tuple[Frame, int | None]:
        client = await RawClient.open(replica.url)
        answer = await client.frame(timeout=15)
        await client.connection.wait_closed()
        return answer, client.connection.close_code

    answer, code = asyncio.run(scenario())

    assert answer["error"] == "join_timeout"
    assert code == 1008
