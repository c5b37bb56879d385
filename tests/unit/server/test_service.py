"""The service layer over the memory store: user code collisions, decisions as compare-and-sets,
token dispatch, userinfo claim checks, and the expired_token retention window."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import pytest

from deviceflow.protocol.codes import USER_CODE_ALPHABET
from deviceflow.protocol.errors import (
    ExpiredTokenError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidTokenError,
    OAuthError,
    ServerError,
    UnsupportedGrantTypeError,
)
from deviceflow.protocol.models import (
    DEVICE_CODE_GRANT,
    REFRESH_TOKEN_GRANT,
    Client,
    ClientType,
    DevicePolicy,
    RequestOrigin,
    TokenPolicy,
    User,
)
from deviceflow.protocol.params import FormParams
from deviceflow.protocol.tokens import ACCESS_TOKEN_TYP
from deviceflow.protocol.verification import Decision
from deviceflow.server.keys import KeyRing, load_keyring
from deviceflow.server.ratelimit import BruteForcePolicy, Limiter
from deviceflow.server.secretbox import SecretBox
from deviceflow.server.service import DecisionOutcome, DeviceFlowService, ServicePolicy
from deviceflow.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.example.com"
ORIGIN = RequestOrigin("203.0.113.5", "pytest")
START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class ScriptedCodes:
    """User codes from a script (to force collisions); device codes and tokens all distinct."""

    def __init__(self, user_codes: Iterator[str]) -> None:
        self._user_codes = user_codes
        self._n = 0

    def device_code(self) -> str:
        self._n += 1
        return f"device-code-{self._n:040d}"

    def user_code(self) -> str:
        return next(self._user_codes)

    def token(self) -> str:
        self._n += 1
        return f"token-{self._n:040d}"


@dataclass
class World:
    service: DeviceFlowService
    store: MemoryStore
    clock: Clock
    user: User


@pytest.fixture(scope="module")
def keyring() -> KeyRing:
    return anyio.run(load_keyring, MemoryStore(), SecretBox.generate())


def policy(**token: object) -> ServicePolicy:
    return ServicePolicy(
        device=DevicePolicy(verification_uri=ISSUER + "/device"),
        token=TokenPolicy(issuer=ISSUER, **token),  # type: ignore[arg-type]
        grant_types=(DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT),
        expired_code_retention=3600,
    )


async def make_world(keyring: KeyRing, codes: ScriptedCodes | None = None,
                     service_policy: ServicePolicy | None = None) -> World:
    store, clock = MemoryStore(), Clock()
    service = DeviceFlowService(store, keyring, service_policy or policy(),
                                Limiter(BruteForcePolicy()), clock=clock, codes=codes)
    user = User("sub-alice", "alice", "Alice", "$argon2id$unused")
    async with store.unit_of_work() as uow:
        await uow.clients.add(Client("tv", "TV", ClientType.PUBLIC,
                                     frozenset({DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT}),
                                     frozenset({"openid", "profile"})))
        await uow.users.add(user)
        await uow.commit()
    return World(service, store, clock, user)


@pytest.fixture
async def world(keyring: KeyRing) -> World:
    return await make_world(keyring)


async def authorize(world: World) -> dict[str, str | int]:
    response = await world.service.tokens.device_authorization(
        FormParams({"client_id": "tv"}), None, ORIGIN)
    return response.body()


async def poll(world: World, device_code: str) -> dict[str, str | int]:
    issued = await world.service.tokens.token(
        FormParams({"client_id": "tv", "grant_type": DEVICE_CODE_GRANT,
                    "device_code": device_code}), None)
    if isinstance(issued, OAuthError):  # pending, slow_down: answers, returned
        raise issued
    return issued.body()


async def test_a_colliding_user_code_is_drawn_again(keyring: KeyRing) -> None:
    codes = ScriptedCodes(iter(["WDJBMJHT", "WDJBMJHT", "WDJBMJHT", "BCDFGHJK"]))
    world = await make_world(keyring, codes)
    first, second = await authorize(world), await authorize(world)
    assert (first["user_code"], second["user_code"]) == ("WDJB-MJHT", "BCDF-GHJK")
    assert first["device_code"] != second["device_code"]


async def test_no_free_user_code_is_a_server_error(keyring: KeyRing) -> None:
    codes = ScriptedCodes(iter(["WDJBMJHT"] * 20))
    world = await make_world(keyring, codes)
    await authorize(world)
    with pytest.raises(ServerError):
        await authorize(world)


@pytest.mark.parametrize(
    "typed", ["{code}", "{lower}", "{bare}", " {spaced} "], ids=["shown", "lower", "bare", "spaced"]
)
async def test_decision_accepts_the_code_as_typed(world: World, typed: str) -> None:
    code = str((await authorize(world))["user_code"])
    text = typed.format(code=code, lower=code.lower(), bare=code.replace("-", ""),
                        spaced=" ".join(code))
    outcome = await world.service.verification.record_decision(
        text, Decision.APPROVE, "sub-alice", START)
    assert outcome is DecisionOutcome.RECORDED


@pytest.mark.parametrize(
    "code", ["", "nonsense", "BCDF-GHJK", "AEIO-UAEI"], ids=["empty", "junk", "unknown", "vowels"]
)
async def test_decision_on_an_unknown_code_changes_nothing(world: World, code: str) -> None:
    assert await world.service.verification.record_decision(
        code, Decision.APPROVE, "u", START) \
        is DecisionOutcome.GONE


async def test_a_decided_code_cannot_be_decided_again(world: World) -> None:
    code = str((await authorize(world))["user_code"])
    svc = world.service
    assert await svc.verification.record_decision(code, Decision.DENY, "sub-alice", START) \
        is DecisionOutcome.RECORDED
    assert await svc.verification.record_decision(code, Decision.APPROVE, "sub-alice", START) \
        is DecisionOutcome.GONE


async def test_an_expired_code_cannot_be_decided(world: World) -> None:
    code = str((await authorize(world))["user_code"])
    world.clock.now += 600
    assert await world.service.verification.record_decision(
        code, Decision.APPROVE, "sub-alice", START) \
        is DecisionOutcome.GONE


async def test_concurrent_decisions_record_exactly_one(world: World) -> None:
    code = str((await authorize(world))["user_code"])
    outcomes: list[DecisionOutcome] = []

    async def decide(i: int) -> None:
        decision = Decision.APPROVE if i % 2 else Decision.DENY
        outcomes.append(await world.service.verification.record_decision(
        code, decision, "sub-alice", START))

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(decide, i)
    assert outcomes.count(DecisionOutcome.RECORDED) == 1
    assert outcomes.count(DecisionOutcome.GONE) == 19


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"client_id": "tv"}, InvalidRequestError),
        ({"client_id": "tv", "grant_type": "password"}, UnsupportedGrantTypeError),
        ({"client_id": "tv", "grant_type": "client_credentials"}, UnsupportedGrantTypeError),
        ({"grant_type": "authorization_code"}, UnsupportedGrantTypeError),
    ],
    ids=["missing", "password", "client_credentials", "authorization_code-before-auth"],
)
async def test_token_dispatch(world: World, form: dict[str, str], error: type[Exception]) -> None:
    with pytest.raises(error):
        await world.service.tokens.token(FormParams(form), None)


async def test_refresh_grant_switched_off_is_unsupported(keyring: KeyRing) -> None:
    off = ServicePolicy(device=policy().device, token=policy().token,
                        grant_types=(DEVICE_CODE_GRANT,))
    world = await make_world(keyring, service_policy=off)
    with pytest.raises(UnsupportedGrantTypeError):
        await world.service.tokens.token(FormParams(
            {"client_id": "tv", "grant_type": "refresh_token", "refresh_token": "x"}), None)
    # ... and no refresh token is issued even to a client registered for the grant.
    body = await authorize(world)
    await world.service.verification.record_decision(
        str(body["user_code"]), Decision.APPROVE, "sub-alice",
                                        START)
    assert "refresh_token" not in await poll(world, str(body["device_code"]))


async def test_expired_code_is_kept_for_expired_token_then_purged(world: World) -> None:
    body = await authorize(world)
    world.clock.now += 600 + 3000  # past expiry, inside the 3600 s retention
    assert await world.service.tokens.purge_expired() == 0
    with pytest.raises(ExpiredTokenError):
        await poll(world, str(body["device_code"]))
    world.clock.now += 601  # past expiry + retention
    assert await world.service.tokens.purge_expired() == 1
    with pytest.raises(InvalidGrantError):
        await poll(world, str(body["device_code"]))


async def test_the_user_deleted_before_redemption_gets_no_tokens(world: World) -> None:
    body = await authorize(world)
    await world.service.verification.record_decision(
        str(body["user_code"]), Decision.APPROVE, "sub-alice",
                                        START)
    async with world.store.unit_of_work() as uow:
        await uow.users.remove("alice")
    with pytest.raises(InvalidGrantError):
        await poll(world, str(body["device_code"]))


@pytest.mark.parametrize(
    ("claims", "typ"),
    [
        ({"iss": "https://evil.example", "sub": "sub-alice", "exp": 4_000_000_000}, "at+jwt"),
        ({"iss": ISSUER, "sub": "sub-alice"}, "at+jwt"),
        ({"iss": ISSUER, "sub": "sub-alice", "exp": "4000000000"}, "at+jwt"),
        ({"iss": ISSUER, "sub": "sub-alice", "exp": int(START)}, "at+jwt"),
        ({"iss": ISSUER, "sub": "sub-nobody", "exp": 4_000_000_000}, "at+jwt"),
        ({"iss": ISSUER, "sub": "sub-alice", "exp": 4_000_000_000}, "JWT"),
        ({"iss": ISSUER, "exp": 4_000_000_000}, "at+jwt"),
    ],
    ids=["other-issuer", "no-exp", "string-exp", "expired-now", "unknown-subject",
         "id-token-typ", "no-sub"],
)
async def test_userinfo_refuses_tokens_that_are_not_ours_now(
    world: World, claims: dict[str, object], typ: str
) -> None:
    token = world.service.keyring.signer.sign(claims, typ)
    with pytest.raises(InvalidTokenError):
        await world.service.tokens.userinfo(token)


async def test_userinfo_describes_the_subject_by_scope(world: World) -> None:
    sign = world.service.keyring.signer.sign
    # RFC 9068 §2.2's REQUIRED claims: a token lacking one is not an access token of ours.
    base = {"iss": ISSUER, "sub": "sub-alice", "exp": 4_000_000_000, "iat": 1, "jti": "j1",
            "client_id": "tv"}
    assert await world.service.tokens.userinfo(
        sign({**base, "scope": "openid"}, ACCESS_TOKEN_TYP)) \
        == {"sub": "sub-alice"}
    assert await world.service.tokens.userinfo(
        sign({**base, "scope": "openid profile"}, ACCESS_TOKEN_TYP)
    ) == {"sub": "sub-alice", "preferred_username": "alice", "name": "Alice"}


def test_scripted_codes_are_valid_user_codes() -> None:
    assert set("WDJBMJHTBCDFGHJK") <= set(USER_CODE_ALPHABET)


async def _poll_error(world: World, device_code: str) -> str:
    with pytest.raises(OAuthError) as info:
        await poll(world, device_code)
    return info.value.error


async def test_a_pending_poll_writes_nothing_to_the_store(world: World) -> None:
    """The hot path: polling state lives beside the store (in process here), so the device
    authorization record is never rewritten by a pending poll."""
    code = str((await authorize(world))["device_code"])
    async with world.store.unit_of_work() as uow:
        before = await uow.device_authorizations.get_by_device_code(
            world.service.keyring.hasher.device_code(code))
    assert await _poll_error(world, code) == "authorization_pending"
    assert await _poll_error(world, code) == "slow_down"
    async with world.store.unit_of_work() as uow:
        after = await uow.device_authorizations.get_by_device_code(
            world.service.keyring.hasher.device_code(code))
    assert after == before


async def test_slow_down_grows_the_interval_for_all_later_polls(world: World) -> None:
    code = str((await authorize(world))["device_code"])
    assert await _poll_error(world, code) == "authorization_pending"
    world.clock.now += 1
    assert await _poll_error(world, code) == "slow_down"  # interval now 10 s
    world.clock.now += 6
    assert await _poll_error(world, code) == "slow_down"  # 6 < 10: too fast again (now 15 s)
    world.clock.now += 15
    assert await _poll_error(world, code) == "authorization_pending"


async def test_clients_are_cached_briefly(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    await authorize(world)
    async with world.store.unit_of_work() as uow:
        await uow.clients.remove("tv")
        await uow.commit()
    await authorize(world)  # still cached: removal takes effect within CLIENT_CACHE_SECONDS
    monkeypatch.setattr("deviceflow.server.service.context.CLIENT_CACHE_SECONDS", 0.0)
    world.service.ctx._clients.clear()
    with pytest.raises(OAuthError) as info:
        await authorize(world)
    assert info.value.error == "invalid_client"
