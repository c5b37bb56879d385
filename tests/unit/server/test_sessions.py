"""The session part of the service over the memory store: what a cookie's id is worth
(lifetime, revocation, malformed ids), approval freshness, and the decision it guards."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import pytest

from deviceflow.protocol.models import (
    DEVICE_CODE_GRANT,
    Client,
    ClientType,
    DevicePolicy,
    RequestOrigin,
    TokenPolicy,
    User,
)
from deviceflow.protocol.params import FormParams
from deviceflow.protocol.verification import Decision
from deviceflow.server.keys import KeyRing, load_keyring
from deviceflow.server.ratelimit import BruteForcePolicy, Limiter
from deviceflow.server.secretbox import SecretBox
from deviceflow.server.service import (
    AdminService,
    DecisionOutcome,
    DeviceFlowService,
    ServicePolicy,
    SignedIn,
)
from deviceflow.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.example.com"
START = 1_800_000_000.0
LIFETIME = 8 * 3600
MAX_AGE = 900


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    service: DeviceFlowService
    store: MemoryStore
    clock: Clock


@pytest.fixture(scope="module")
def keyring() -> KeyRing:
    return anyio.run(load_keyring, MemoryStore(), SecretBox.generate())


@pytest.fixture
async def world(keyring: KeyRing) -> World:
    store, clock = MemoryStore(), Clock()
    policy = ServicePolicy(
        device=DevicePolicy(verification_uri=ISSUER + "/device", expires_in=3600),
        token=TokenPolicy(issuer=ISSUER),
        grant_types=(DEVICE_CODE_GRANT,),
        session_lifetime=LIFETIME,
        approval_max_age=MAX_AGE,
    )
    service = DeviceFlowService(store, keyring, policy, Limiter(BruteForcePolicy()), clock=clock)
    async with store.unit_of_work() as uow:
        await uow.clients.add(Client("tv", "TV", ClientType.PUBLIC,
                                     frozenset({DEVICE_CODE_GRANT}), frozenset({"openid"})))
        await uow.users.add(User("sub-alice", "alice", "Alice", "$argon2id$unused"))
        await uow.commit()
    return World(service, store, clock)


async def test_a_sign_in_may_approve_until_approval_max_age_and_lives_until_its_lifetime(
    world: World,
) -> None:
    sessions = world.service.sessions
    session_id = await sessions.start("sub-alice")
    assert await sessions.current(session_id) == SignedIn("sub-alice", START, may_approve=True)
    world.clock.now = START + MAX_AGE - 1
    assert await sessions.current(session_id) == SignedIn("sub-alice", START, may_approve=True)
    world.clock.now = START + MAX_AGE
    assert await sessions.current(session_id) == SignedIn("sub-alice", START, may_approve=False)
    world.clock.now = START + LIFETIME - 1
    assert await sessions.current(session_id) is not None
    world.clock.now = START + LIFETIME
    assert await sessions.current(session_id) is None


@pytest.mark.parametrize(
    "cookie_value", [None, "", 42, ["a"], "x" * 129, "not-a-session-we-issued"],
    ids=["missing", "empty", "number", "list", "too-long", "unknown"],
)
async def test_whatever_the_cookie_holds_that_is_not_a_live_id_is_no_sign_in(
    world: World, cookie_value: object,
) -> None:
    assert await world.service.sessions.current(cookie_value) is None
    assert await world.service.sessions.end(cookie_value) is False


async def test_ending_a_sign_in_is_final(world: World) -> None:
    sessions = world.service.sessions
    session_id = await sessions.start("sub-alice")
    assert await sessions.end(session_id) is True
    assert await sessions.end(session_id) is False
    assert await sessions.current(session_id) is None


async def test_starting_a_sign_in_ends_the_one_it_replaces(world: World) -> None:
    sessions = world.service.sessions
    first = await sessions.start("sub-alice")
    second = await sessions.start("sub-alice", replacing=first)
    assert second != first
    assert await sessions.current(first) is None
    assert await sessions.current(second) is not None


async def test_admin_password_change_and_signout_end_sign_ins(world: World) -> None:
    sessions = world.service.sessions
    admin = AdminService(world.store, world.clock)
    first, second = await sessions.start("sub-alice"), await sessions.start("sub-alice")
    assert await admin.set_password("alice", "another long password") is not None
    assert [await sessions.current(i) for i in (first, second)] == [None, None]
    third = await sessions.start("sub-alice")
    assert await admin.sign_out_user("alice") == 1
    assert await sessions.current(third) is None
    assert await admin.sign_out_user("nobody") is None
    assert await admin.set_password("nobody", "another long password") is None


async def _user_code(world: World) -> str:
    response = await world.service.tokens.device_authorization(
        FormParams({"client_id": "tv"}), None, RequestOrigin("203.0.113.5", "pytest"))
    return str(response.body()["user_code"])


async def test_an_approval_needs_a_password_younger_than_approval_max_age(world: World) -> None:
    code = await _user_code(world)
    decide = world.service.verification.record_decision
    world.clock.now = START + MAX_AGE
    assert await decide(code, Decision.APPROVE, "sub-alice", START) is (
        DecisionOutcome.SIGN_IN_AGAIN
    )
    assert await decide(code, Decision.APPROVE, "sub-alice", START + 1) is (
        DecisionOutcome.RECORDED
    )


@pytest.mark.parametrize("decision", list(Decision), ids=[d.value for d in Decision])
async def test_a_decision_rereads_the_sign_in_inside_its_own_transaction(
    world: World, decision: Decision,
) -> None:
    """The page reads the sign-in, then records the decision: a sign-out (or an operator's
    revoke) committed in between must win, or a copied cookie could slip one approval through
    the gap. Here the sign-out lands exactly there."""
    code = await _user_code(world)
    sessions, decide = world.service.sessions, world.service.verification.record_decision
    session_id = await sessions.start("sub-alice")
    signed = await sessions.current(session_id)  # what the consent page read
    assert signed is not None
    assert signed.may_approve
    other = await sessions.start("sub-bob")
    assert await sessions.end(session_id)
    for sid in (session_id, other, "never-issued"):
        assert await decide(code, decision, signed.user_id, signed.auth_time,
                            session_id=sid) is DecisionOutcome.SIGN_IN_AGAIN
    assert await world.service.verification.pending_request(code) is not None  # still pending
    live = await sessions.start("sub-alice")
    assert await decide(code, decision, "sub-alice", START, session_id=live) is (
        DecisionOutcome.RECORDED
    )


async def test_a_denial_needs_no_fresh_password(world: World) -> None:
    code = await _user_code(world)
    world.clock.now = START + 3 * MAX_AGE
    assert await world.service.verification.record_decision(
        code, Decision.DENY, "sub-alice", START) is DecisionOutcome.RECORDED


async def test_the_purge_deletes_expired_sign_ins_in_batches(world: World) -> None:
    sessions = world.service.sessions
    ids = [await sessions.start("sub-alice") for _ in range(3)]
    await sessions.end(ids[0])  # revoked ones go too, once expired
    world.clock.now = START + LIFETIME
    assert await sessions.purge_expired() == 0  # expires_at is not before now yet
    world.clock.now += 1
    assert await sessions.purge_expired(batch=2) == 2
    assert await sessions.purge_expired(batch=2) == 1
    assert await sessions.purge_expired(batch=2) == 0
