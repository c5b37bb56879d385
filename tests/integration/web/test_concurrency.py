"""Concurrency against a real server (uvicorn + SQLite over loopback): many devices through the
whole flow at once, racing polls on one approved code, and racing decisions on one user code.

Single use is a storage compare-and-set (RFC 8628 §3.5 with RFC 6749 §4.1.2's "MUST NOT use the
authorization code more than once"): of any number of concurrent redemptions exactly one gets
tokens, and of concurrent decisions exactly one is recorded. Approvals go through the service,
on the live server's own database, as the verification pages would record them."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from deviceflow.protocol.models import (
    DEVICE_CODE_GRANT,
    REFRESH_TOKEN_GRANT,
    ClientType,
    DevicePolicy,
    TokenPolicy,
    User,
)
from deviceflow.protocol.verification import Decision
from deviceflow.server.bootstrap import key_source, open_store
from deviceflow.server.keys import load_keyring
from deviceflow.server.ratelimit import BruteForcePolicy, Limiter
from deviceflow.server.service import (
    AdminService,
    DecisionOutcome,
    DeviceFlowService,
    ServicePolicy,
)
from deviceflow.storage.interface import Store

pytestmark = pytest.mark.anyio

DEVICES = 200
RACING_POLLS = 50
RACING_DECISIONS = 20
SCOPE = "openid profile offline_access"


@dataclass
class Harness:
    """The live server, an HTTP client with room for every device at once, and the service on
    the server's database for approvals."""

    issuer: str
    http: httpx.AsyncClient
    service: DeviceFlowService
    store: Store
    client_id: str

    async def add_users(self, count: int) -> list[User]:
        # Nobody signs in here, so no argon2id per user: it would only cost CPU.
        prefix = uuid.uuid4().hex[:8]
        users = [User(f"sub-{prefix}-{i}", f"user-{prefix}-{i}", f"User {i}", "$argon2id$unused",
                      time.time()) for i in range(count)]
        async with self.store.unit_of_work() as uow:
            for user in users:
                await uow.users.add(user)
            await uow.commit()
        return users

    async def authorize(self) -> dict[str, Any]:
        response = await self.http.post("/device_authorization",
                                        data={"client_id": self.client_id, "scope": SCOPE})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def poll(self, device_code: str) -> httpx.Response:
        return await self.http.post("/token", data={
            "grant_type": DEVICE_CODE_GRANT, "device_code": device_code,
            "client_id": self.client_id})

    async def decide(self, user_code: str, user: User, decision: Decision = Decision.APPROVE
                     ) -> DecisionOutcome:
        return await self.service.verification.record_decision(user_code, decision, user.user_id,
                                                  time.time())

    async def keys(self) -> KeySet:
        return KeySet.import_key_set((await self.http.get("/jwks.json")).json())


@pytest.fixture
async def harness(live_server: Any) -> AsyncIterator[Harness]:
    store = await open_store(live_server.db_url, migrate=False)
    try:
        # The server's secrets under the server's key-encryption key: same HMACs, same keys.
        keyring = await load_keyring(store, key_source(live_server.settings))
        policy = ServicePolicy(
            device=DevicePolicy(verification_uri=live_server.issuer + "/device"),
            token=TokenPolicy(issuer=live_server.issuer),
            grant_types=(DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT),
        )
        service = DeviceFlowService(store, keyring, policy, Limiter(BruteForcePolicy()))
        client_id = f"concurrency-{uuid.uuid4().hex[:8]}"
        await AdminService(store).add_client(client_id, "Concurrency", ClientType.PUBLIC,
                                             [DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT],
                                             ["openid", "profile", "offline_access"])
        limits = httpx.Limits(max_connections=DEVICES + 50,
                              max_keepalive_connections=DEVICES + 50)
        async with httpx.AsyncClient(base_url=live_server.issuer, limits=limits,
                                     timeout=60) as http:
            yield Harness(live_server.issuer, http, service, store, client_id)
    finally:
        await store.close()


def claims_of(token: str, keys: KeySet) -> dict[str, Any]:
    return dict(jwt.decode(token, keys, algorithms=["RS256", "ES256"]).claims)


async def gather(count: int, job: Any) -> list[Any]:
    """Run ``job(i)`` for every i at once; results in order of i."""
    results: list[Any] = [None] * count

    async def run(i: int) -> None:
        results[i] = await job(i)

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(run, i)
    return results


@pytest.mark.slow  # ~1000 requests and 200 approvals through one SQLite file: 10-30 s on 2 cores
async def test_many_devices_each_get_exactly_their_own_users_tokens_once(
    harness: Harness,
) -> None:
    users = await harness.add_users(DEVICES)

    async def device(i: int) -> tuple[dict[str, Any], list[str], str]:
        codes = await harness.authorize()
        answers = [(await harness.poll(codes["device_code"])).json().get("error", "tokens")]
        assert await harness.decide(codes["user_code"], users[i]) is DecisionOutcome.RECORDED
        interval = codes["interval"]
        deadline = time.monotonic() + 60
        while True:
            await anyio.sleep(interval)
            response = await harness.poll(codes["device_code"])
            if response.status_code == 200:
                tokens: dict[str, Any] = response.json()
                break
            error = response.json()["error"]
            answers.append(error)
            assert error in ("authorization_pending", "slow_down"), response.text
            interval += 5 if error == "slow_down" else 0
            assert time.monotonic() < deadline, answers
        answers.append("tokens")
        return tokens, answers, codes["device_code"]

    results = await gather(DEVICES, device)

    keys = await harness.keys()
    seen_jti: set[str] = set()
    for i, (tokens, answers, _) in enumerate(results):
        assert answers[0] == "authorization_pending"
        assert answers[-1] == "tokens"
        access = claims_of(tokens["access_token"], keys)
        assert access["sub"] == users[i].user_id, f"device {i} got someone else's token"
        assert access["client_id"] == harness.client_id
        assert access["scope"] == SCOPE
        assert claims_of(tokens["id_token"], keys)["sub"] == users[i].user_id
        seen_jti.add(access["jti"])
    assert len(seen_jti) == DEVICES
    assert len({tokens["refresh_token"] for tokens, _, _ in results}) == DEVICES

    # And the resource side agrees: each access token describes its own person.
    async def whoami(i: int) -> dict[str, Any]:
        response = await harness.http.get(
            "/userinfo", headers={"Authorization": "Bearer " + results[i][0]["access_token"]})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    infos = await gather(DEVICES, whoami)
    for i, info in enumerate(infos):
        assert (info["sub"], info["preferred_username"]) == (users[i].user_id, users[i].username)

    # Each code polled again: already redeemed, so invalid_grant, and the tokens issued from it
    # are revoked (RFC 6749 §4.1.2) -- that device's, and no other device's.
    async def replay(i: int) -> int:
        again = await harness.poll(results[i][2])
        assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
        response = await harness.http.get(
            "/userinfo", headers={"Authorization": "Bearer " + results[i][0]["access_token"]})
        return response.status_code

    half = DEVICES // 2
    assert await gather(half, replay) == [401] * half
    assert (await gather(DEVICES - half, lambda i: whoami(half + i)))[0]["sub"] == (
        users[half].user_id)


async def test_concurrent_polls_of_one_approved_code_redeem_it_once(harness: Harness) -> None:
    [alice] = await harness.add_users(1)
    codes = await harness.authorize()
    assert await harness.decide(codes["user_code"], alice) is DecisionOutcome.RECORDED

    responses: list[httpx.Response] = await gather(
        RACING_POLLS, lambda _: harness.poll(codes["device_code"]))

    outcomes = Counter(
        "tokens" if r.status_code == 200 else r.json()["error"] for r in responses)
    assert outcomes == {"tokens": 1, "invalid_grant": RACING_POLLS - 1}
    [winner] = [r for r in responses if r.status_code == 200]
    assert claims_of(winner.json()["access_token"], await harness.keys())["sub"] == alice.user_id


async def test_concurrent_polls_of_one_pending_code_never_issue_tokens(harness: Harness) -> None:
    codes = await harness.authorize()
    responses: list[httpx.Response] = await gather(
        RACING_POLLS, lambda _: harness.poll(codes["device_code"]))
    outcomes = Counter(r.json()["error"] for r in responses)
    # No tokens, ever. The first poll is on time; the others come too fast (each slow_down also
    # adds 5 s to the interval, so only a server stalled for most of a second lets one more
    # poll count as on time).
    assert set(outcomes) <= {"authorization_pending", "slow_down"}
    assert 1 <= outcomes["authorization_pending"] <= 2
    assert outcomes["slow_down"] >= RACING_POLLS - 2


@pytest.mark.parametrize("mix", ["all-approve", "approve-and-deny"])
async def test_concurrent_decisions_on_one_code_record_exactly_one(
    harness: Harness, mix: str
) -> None:
    users = await harness.add_users(RACING_DECISIONS)
    codes = await harness.authorize()

    def decision(i: int) -> Decision:
        return Decision.DENY if mix == "approve-and-deny" and i % 2 else Decision.APPROVE

    outcomes: list[DecisionOutcome] = await gather(
        RACING_DECISIONS, lambda i: harness.decide(codes["user_code"], users[i], decision(i)))

    assert outcomes.count(DecisionOutcome.RECORDED) == 1
    assert outcomes.count(DecisionOutcome.GONE) == RACING_DECISIONS - 1
    winner = outcomes.index(DecisionOutcome.RECORDED)
    response = await harness.poll(codes["device_code"])
    if decision(winner) is Decision.DENY:
        assert response.json()["error"] == "access_denied"
    else:
        assert response.status_code == 200, response.text
        claims = claims_of(response.json()["access_token"], await harness.keys())
        assert claims["sub"] == users[winner].user_id


async def test_concurrent_refreshes_of_one_token_leave_one_working_family(
    harness: Harness,
) -> None:
    [alice] = await harness.add_users(1)
    codes = await harness.authorize()
    assert await harness.decide(codes["user_code"], alice) is DecisionOutcome.RECORDED
    tokens = (await harness.poll(codes["device_code"])).json()

    responses: list[httpx.Response] = await gather(RACING_POLLS, lambda _: harness.http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                        "client_id": harness.client_id}))

    outcomes = Counter(
        "tokens" if r.status_code == 200 else r.json()["error"] for r in responses)
    # One rotation, then retries within the reuse grace window, each replacing the unused
    # successor (or refused when they lose that race): never a revoked family.
    assert outcomes["tokens"] >= 1
    assert set(outcomes) <= {"tokens", "invalid_grant"}
    issued = [r.json()["refresh_token"] for r in responses if r.status_code == 200]
    working = []
    for token in issued:
        again = await harness.http.post("/token", data={
            "grant_type": "refresh_token", "refresh_token": token,
            "client_id": harness.client_id})
        if again.status_code == 200:
            working.append(again.json()["refresh_token"])
    assert len(working) == 1, "exactly one successor lives, and the family was not revoked"
