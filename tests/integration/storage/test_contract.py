"""The storage contract (``deviceflow.storage.interface``), run against every store: memory, SQLite
and PostgreSQL. Every port method, every compare-and-set (also under real concurrency, from
separate units of work and connections), and the transactional behaviour of the SQL stores."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import TypeVar

import pytest
from sqlalchemy.exc import IntegrityError
from tests.support.stores import Backend

from deviceflow.protocol.audit import AuditQuery
from deviceflow.protocol.models import (
    ActiveGrant,
    BrowserSession,
    BrowserSessionStatus,
    Client,
    ClientChanges,
    ClientType,
    DeniedToken,
    DenyKind,
    DeviceAuthorization,
    DeviceStatus,
    GrantRecord,
    RefreshStatus,
    RefreshToken,
    RequestOrigin,
    User,
)
from deviceflow.storage.interface import (
    AlreadyExistsError,
    SecretEncryption,
    SigningKeyRecord,
    Store,
    StoredSecret,
    UnitOfWork,
)

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.25  # a fraction, so a float column that rounds would show
CONCURRENCY = 50
WORKERS = 10
T = TypeVar("T")


# ------------------------------------------------------------------------------------ records


def a_client(client_id: str = "cli", **changes: object) -> Client:
    client = Client(
        client_id=client_id,
        name="The CLI",
        client_type=ClientType.PUBLIC,
        grant_types=frozenset({"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"}),
        scopes=frozenset({"openid", "profile", "offline_access"}),
        created_at=NOW,
    )
    return dataclasses.replace(client, **changes)  # type: ignore[arg-type]


def a_user(username: str = "ada", **changes: object) -> User:
    user = User(
        user_id=f"sub-{username}",
        username=username,
        name="Ada Lovelace",
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        created_at=NOW,
    )
    return dataclasses.replace(user, **changes)  # type: ignore[arg-type]


def a_device(n: int = 1, **changes: object) -> DeviceAuthorization:
    record = DeviceAuthorization(
        device_code_hash=f"device-{n:04d}",
        user_code_hash=f"user-{n:04d}",
        client_id="cli",
        scope=("openid", "profile", "offline_access"),  # order matters: kept as requested
        status=DeviceStatus.PENDING,
        created_at=NOW,
        expires_at=NOW + 600,
        interval=5,
        origin=RequestOrigin(ip_address="2001:db8::1", user_agent="curl/8.5.0 (ünïcode)"),
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def a_token(n: int = 1, family_id: str = "family-1", **changes: object) -> RefreshToken:
    token = RefreshToken(
        token_hash=f"refresh-{n:04d}",
        family_id=family_id,
        client_id="cli",
        user_id="sub-ada",
        scope=("openid", "offline_access"),
        issued_at=NOW,
        expires_at=NOW + 86_400,
        auth_time=NOW - 30.5,
        family_expires_at=NOW + 7 * 86_400.5,
        grant_type="urn:ietf:params:oauth:grant-type:device_code",
    )
    return dataclasses.replace(token, **changes)  # type: ignore[arg-type]


def a_session(n: int = 1, user_id: str = "sub-ada", **changes: object) -> BrowserSession:
    session = BrowserSession(
        session_hash=f"session-{n:04d}",
        user_id=user_id,
        auth_time=NOW + 0.5,
        expires_at=NOW + 8 * 3600,
    )
    return dataclasses.replace(session, **changes)  # type: ignore[arg-type]


def approved(record: DeviceAuthorization) -> DeviceAuthorization:
    return dataclasses.replace(
        record,
        status=DeviceStatus.APPROVED,
        user_id="sub-ada",
        auth_time=NOW + 10.5,
        decided_at=NOW + 11.5,
    )


async def committed(store: Store, action: Callable[[UnitOfWork], Awaitable[object]]) -> object:
    """Run ``action`` in its own unit of work and commit."""
    async with store.unit_of_work() as uow:
        result = await action(uow)
        await uow.commit()
    return result


async def concurrently(
    backend: Backend,
    action: Callable[[UnitOfWork], Awaitable[T]],
    n: int = CONCURRENCY,
    workers: int = WORKERS,
) -> list[T]:
    """Run ``action`` in ``n`` units of work released at once, spread over ``workers`` stores
    (simulated server processes, each with its own pool), every unit on its own connection;
    each commits. Only the database decides between them."""
    barrier = asyncio.Barrier(n)
    per_worker = -(-n // workers)

    async def one(store: Store) -> T:
        await barrier.wait()
        async with store.unit_of_work() as uow:
            result = await action(uow)
            await uow.commit()
            return result

    async with backend.worker_stores(workers, pool_size=per_worker) as stores:
        return list(await asyncio.gather(*(one(stores[i % workers]) for i in range(n))))


# -------------------------------------------------------------------------------------- clients


@pytest.mark.parametrize(
    "client",
    [
        a_client(),
        a_client(
            "svc",
            client_type=ClientType.CONFIDENTIAL,
            secret_hash="pbkdf2$abc",
            device_code_lifetime=900,
            scopes=frozenset(),
        ),
    ],
    ids=["public", "confidential"],
)
async def test_client_round_trip(backend: Backend, client: Client) -> None:
    await committed(backend.store, lambda uow: uow.clients.add(client))
    async with backend.store.unit_of_work() as uow:
        assert await uow.clients.get(client.client_id) == client
        assert await uow.clients.get("nobody") is None


async def test_client_duplicate_id_is_refused(backend: Backend) -> None:
    await committed(backend.store, lambda uow: uow.clients.add(a_client()))
    async with backend.store.unit_of_work() as uow:
        with pytest.raises(AlreadyExistsError):
            await uow.clients.add(a_client(name="Impostor"))
        assert await uow.clients.get("cli") == a_client()


async def test_client_list_and_remove(backend: Backend) -> None:
    async with backend.store.unit_of_work() as uow:
        for client_id in ("zeta", "alpha", "mid"):
            await uow.clients.add(a_client(client_id))
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        assert [c.client_id for c in await uow.clients.list()] == ["alpha", "mid", "zeta"]
        assert await uow.clients.remove("mid") is True
        assert await uow.clients.remove("mid") is False
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        assert [c.client_id for c in await uow.clients.list()] == ["alpha", "zeta"]



@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (ClientChanges(), {}),
        (ClientChanges(name="Renamed"), {"name": "Renamed"}),
        (ClientChanges(grant_types=frozenset()), {"grant_types": frozenset()}),
        (ClientChanges(scopes=frozenset({"openid"}), device_code_lifetime=120),
         {"scopes": frozenset({"openid"}), "device_code_lifetime": 120}),
        (ClientChanges(default_device_code_lifetime=True), {"device_code_lifetime": None}),
    ],
    ids=["nothing", "name", "no-grants", "scopes-and-lifetime", "default-lifetime"],
)
async def test_client_update_changes_only_what_it_names(
    backend: Backend, changes: ClientChanges, expected: dict[str, object]
) -> None:
    before = a_client(device_code_lifetime=300, secret_hash="h")
    await committed(backend.store, lambda uow: uow.clients.add(before))
    async with backend.store.unit_of_work() as uow:
        assert await uow.clients.update("cli", changes) is True
        assert await uow.clients.update("nobody", changes) is False
        await uow.commit()
    async with backend.store.unit_of_work(read_only=True) as uow:
        assert await uow.clients.get("cli") == dataclasses.replace(before, **expected)  # type: ignore[arg-type]
        assert await uow.clients.get("nobody") is None

# ---------------------------------------------------------------------------------------- users


async def test_user_round_trip(backend: Backend) -> None:
    user = a_user()
    await committed(backend.store, lambda uow: uow.users.add(user))
    async with backend.store.unit_of_work() as uow:
        assert await uow.users.get("sub-ada") == user
        assert await uow.users.get_by_username("ada") == user
        assert await uow.users.get("sub-nobody") is None
        assert await uow.users.get_by_username("nobody") is None


async def test_user_duplicate_username_is_refused(backend: Backend) -> None:
    await committed(backend.store, lambda uow: uow.users.add(a_user()))
    async with backend.store.unit_of_work() as uow:
        with pytest.raises(AlreadyExistsError):
            await uow.users.add(a_user(user_id="sub-other"))
        # The transaction is still usable after the refusal.
        await uow.users.add(a_user("grace"))
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        assert [u.username for u in await uow.users.list()] == ["ada", "grace"]


async def test_user_list_remove_and_set_password(backend: Backend) -> None:
    async with backend.store.unit_of_work() as uow:
        for name in ("carol", "ada", "bob"):
            await uow.users.add(a_user(name))
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        assert [u.username for u in await uow.users.list()] == ["ada", "bob", "carol"]
        assert await uow.users.set_password_hash("bob", "new-hash") is True
        assert await uow.users.set_password_hash("nobody", "new-hash") is False
        assert await uow.users.remove("carol") is True
        assert await uow.users.remove("carol") is False
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        assert [u.username for u in await uow.users.list()] == ["ada", "bob"]
        bob = await uow.users.get_by_username("bob")
        assert bob is not None
        assert bob.password_hash == "new-hash"
        assert bob == dataclasses.replace(a_user("bob"), password_hash="new-hash")


# ------------------------------------------------------------------------ device authorizations


@pytest.mark.parametrize(
    "record",
    [
        a_device(),
        approved(a_device(2, last_polled_at=NOW + 5.5, interval=10, scope=())),
    ],
    ids=["pending", "approved-every-field"],
)
async def test_device_round_trip(backend: Backend, record: DeviceAuthorization) -> None:
    await committed(backend.store, lambda uow: uow.device_authorizations.add(record))
    async with backend.store.unit_of_work() as uow:
        repo = uow.device_authorizations
        assert await repo.get_by_device_code(record.device_code_hash) == record
        assert await repo.get_by_user_code(record.user_code_hash) == record
        assert await repo.get_by_device_code(record.user_code_hash) is None
        assert await repo.get_by_user_code(record.device_code_hash) is None


async def test_duplicate_user_code_is_refused_and_the_transaction_stays_usable(
    backend: Backend,
) -> None:
    await committed(backend.store, lambda uow: uow.device_authorizations.add(a_device(1)))
    async with backend.store.unit_of_work() as uow:
        repo = uow.device_authorizations
        await repo.add(a_device(2))  # written before the collision: must survive it
        with pytest.raises(AlreadyExistsError):
            await repo.add(a_device(3, user_code_hash="user-0001"))
        with pytest.raises(AlreadyExistsError):  # same user code within this transaction
            await repo.add(a_device(4, user_code_hash="user-0002"))
        # What the service does next: draw another user code and try again.
        await repo.add(a_device(5))
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        repo = uow.device_authorizations
        for n, exists in [(1, True), (2, True), (3, False), (4, False), (5, True)]:
            assert (await repo.get_by_device_code(f"device-{n:04d}") is not None) is exists, n
        first = await repo.get_by_user_code("user-0001")
        assert first is not None
        assert first.device_code_hash == "device-0001"


async def test_duplicate_device_code_is_refused(backend: Backend) -> None:
    await committed(backend.store, lambda uow: uow.device_authorizations.add(a_device(1)))
    async with backend.store.unit_of_work() as uow:
        with pytest.raises(AlreadyExistsError):
            await uow.device_authorizations.add(a_device(1, user_code_hash="user-9999"))


async def test_transition_is_a_compare_and_set_on_the_status(backend: Backend) -> None:
    record = a_device()
    await committed(backend.store, lambda uow: uow.device_authorizations.add(record))
    decided = approved(record)
    redeemed = dataclasses.replace(decided, status=DeviceStatus.REDEEMED, last_polled_at=NOW + 20)
    denied = dataclasses.replace(record, status=DeviceStatus.DENIED, decided_at=NOW + 1)
    async with backend.store.unit_of_work() as uow:
        repo = uow.device_authorizations
        assert await repo.transition(decided, DeviceStatus.PENDING) is True
        assert await repo.transition(denied, DeviceStatus.PENDING) is False  # decided once
        assert await repo.get_by_device_code(record.device_code_hash) == decided
        assert await repo.transition(redeemed, DeviceStatus.APPROVED) is True
        assert await repo.transition(redeemed, DeviceStatus.APPROVED) is False  # used once
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        stored = await uow.device_authorizations.get_by_device_code(record.device_code_hash)
    assert stored == redeemed


async def test_transition_of_an_unknown_record_is_refused(backend: Backend) -> None:
    async with backend.store.unit_of_work() as uow:
        assert (
            await uow.device_authorizations.transition(approved(a_device()), DeviceStatus.PENDING)
            is False
        )


async def test_transition_stores_only_the_decision_fields(backend: Backend) -> None:
    record = a_device()
    await committed(backend.store, lambda uow: uow.device_authorizations.add(record))
    decided = dataclasses.replace(approved(record), interval=99, scope=("other",))
    async with backend.store.unit_of_work() as uow:
        assert await uow.device_authorizations.transition(decided, DeviceStatus.PENDING) is True
        stored = await uow.device_authorizations.get_by_device_code(record.device_code_hash)
    assert stored == approved(record)


async def test_concurrent_redemptions_have_exactly_one_winner(backend: Backend) -> None:
    record = approved(a_device())
    await committed(backend.store, lambda uow: uow.device_authorizations.add(record))
    redeemed = dataclasses.replace(record, status=DeviceStatus.REDEEMED)

    async def redeem(uow: UnitOfWork) -> bool:
        # As the token endpoint does: load, decide, then compare-and-set.
        loaded = await uow.device_authorizations.get_by_device_code(record.device_code_hash)
        assert loaded is not None
        return await uow.device_authorizations.transition(redeemed, DeviceStatus.APPROVED)

    results = await concurrently(backend, redeem)
    assert results.count(True) == 1
    async with backend.store.unit_of_work() as uow:
        stored = await uow.device_authorizations.get_by_device_code(record.device_code_hash)
    assert stored == redeemed


async def test_read_only_unit_of_work_reads_beside_a_writer(backend: Backend) -> None:
    """A read-only unit of work sees committed data and is not held up by an open writer (on
    SQLite: a deferred WAL snapshot, outside the store's write lock)."""
    record = a_device()
    await committed(backend.store, lambda uow: uow.device_authorizations.add(record))
    async with backend.store.unit_of_work() as writer:
        await writer.device_authorizations.add(a_device(2, user_code_hash="user-2"))
        async with asyncio.timeout(5), backend.store.unit_of_work(read_only=True) as reader:
            seen = await reader.device_authorizations.get_by_device_code(
                record.device_code_hash
            )
            unseen = await reader.device_authorizations.get_by_device_code(
                a_device(2).device_code_hash
            )
        await writer.commit()
    assert seen == record
    if backend.kind != "memory":  # the memory store has no isolation (see its docstring)
        assert unseen is None  # the writer had not committed yet


async def test_every_read_gives_the_same_records_in_a_read_only_unit_of_work(
    backend: Backend,
) -> None:
    """On SQLite, read-only units of work run the repositories' statements straight on the
    driver; every read must still return exactly what a read-write unit of work returns."""
    records = [a_device(1), approved(a_device(2)), a_device(3, user_id=None, auth_time=None)]

    async def fill(uow: UnitOfWork) -> None:
        for client in (a_client("b-cli"), a_client("cli", client_type=ClientType.CONFIDENTIAL,
                                                   secret_hash="sha256$abc")):
            await uow.clients.add(client)
        for user in (a_user("ada"), a_user("bob", name="")):
            await uow.users.add(user)
        for record in records:
            await uow.device_authorizations.add(record)
        await uow.refresh_tokens.add(a_token(1))
        await uow.secrets.add_if_absent("hmac", sealed(b"\x00\xffsecret"))

    await committed(backend.store, fill)

    async def read_all(uow: UnitOfWork) -> list[object]:
        d, r = uow.device_authorizations, uow.refresh_tokens
        return [
            await uow.clients.get("cli"), await uow.clients.get("nobody"),
            list(await uow.clients.list()),
            await uow.users.get("sub-bob"), await uow.users.get_by_username("ada"),
            await uow.users.get_by_username("nobody"), list(await uow.users.list()),
            *[await d.get_by_device_code(x.device_code_hash) for x in records],
            *[await d.get_by_user_code(x.user_code_hash) for x in records],
            await d.get_by_device_code("unknown"),
            await r.get(a_token(1).token_hash), await r.get("unknown"),
            await uow.secrets.get("hmac"), await uow.secrets.get("nothing"),
            list(await uow.secrets.names()),
        ]

    async with backend.store.unit_of_work() as uow:
        expected = await read_all(uow)
    async with backend.store.unit_of_work(read_only=True) as uow:
        got = await read_all(uow)
    assert got == expected
    assert expected[0] == a_client("cli", client_type=ClientType.CONFIDENTIAL,
                                   secret_hash="sha256$abc")
    assert expected[7:10] == records
    assert expected[-3] == sealed(b"\x00\xffsecret")


async def test_concurrent_decisions_have_exactly_one_winner(backend: Backend) -> None:
    record = a_device()
    await committed(backend.store, lambda uow: uow.device_authorizations.add(record))
    choices = [approved(record), dataclasses.replace(record, status=DeviceStatus.DENIED)]
    turn = iter(range(CONCURRENCY))

    async def decide(uow: UnitOfWork) -> bool:
        choice = choices[next(turn) % 2]
        return await uow.device_authorizations.transition(choice, DeviceStatus.PENDING)

    results = await concurrently(backend, decide)
    assert results.count(True) == 1
    async with backend.store.unit_of_work() as uow:
        stored = await uow.device_authorizations.get_by_device_code(record.device_code_hash)
    assert stored in choices


async def test_device_purge_deletes_expired_records_in_batches(backend: Backend) -> None:
    async with backend.store.unit_of_work() as uow:
        for n in range(7):  # expired
            await uow.device_authorizations.add(a_device(n, expires_at=NOW - 100 + n))
        for n in range(10, 13):  # live, one exactly at the cut-off (not before it)
            await uow.device_authorizations.add(a_device(n, expires_at=NOW + n - 10))
        await uow.commit()
    batches = []
    for _ in range(4):
        async with backend.store.unit_of_work() as uow:
            batches.append(await uow.device_authorizations.purge(NOW, 3))
            await uow.commit()
    assert batches == [3, 3, 1, 0]
    async with backend.store.unit_of_work() as uow:
        repo = uow.device_authorizations
        assert await repo.purge(NOW, 0) == 0
        for n in range(7):
            assert await repo.get_by_device_code(f"device-{n:04d}") is None
            # A purged record frees its user code for a new authorization.
            assert await repo.get_by_user_code(f"user-{n:04d}") is None
        for n in range(10, 13):
            assert await repo.get_by_device_code(f"device-{n:04d}") is not None
        await repo.add(a_device(99, user_code_hash="user-0000"))


# ------------------------------------------------------------------------------- refresh tokens


async def test_refresh_token_round_trip(backend: Backend) -> None:
    token = a_token()
    await committed(backend.store, lambda uow: uow.refresh_tokens.add(token))
    async with backend.store.unit_of_work() as uow:
        assert await uow.refresh_tokens.get(token.token_hash) == token
        assert await uow.refresh_tokens.get("nothing") is None
        with pytest.raises(AlreadyExistsError):
            await uow.refresh_tokens.add(a_token(family_id="other"))
        await uow.refresh_tokens.add(a_token(2))  # still usable
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        assert await uow.refresh_tokens.get("refresh-0002") == a_token(2)


async def test_rotate_is_single_use_and_adds_the_successor(backend: Backend) -> None:
    await committed(backend.store, lambda uow: uow.refresh_tokens.add(a_token()))
    async with backend.store.unit_of_work() as uow:
        assert await uow.refresh_tokens.rotate("refresh-0001", a_token(2), NOW + 5.5) is True
        assert await uow.refresh_tokens.rotate("refresh-0001", a_token(3), NOW + 6) is False
        assert await uow.refresh_tokens.rotate("nothing", a_token(4), NOW) is False
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        assert await uow.refresh_tokens.get("refresh-0001") == a_token(
            status=RefreshStatus.ROTATED, successor_hash="refresh-0002", rotated_at=NOW + 5.5)
        assert await uow.refresh_tokens.get("refresh-0002") == a_token(2)
        # A lost compare-and-set adds nothing.
        assert await uow.refresh_tokens.get("refresh-0003") is None
        assert await uow.refresh_tokens.get("refresh-0004") is None


async def test_rotate_refuses_a_revoked_token(backend: Backend) -> None:
    revoked = a_token(status=RefreshStatus.REVOKED)
    await committed(backend.store, lambda uow: uow.refresh_tokens.add(revoked))
    async with backend.store.unit_of_work() as uow:
        assert await uow.refresh_tokens.rotate(revoked.token_hash, a_token(2), NOW) is False
        assert await uow.refresh_tokens.get(revoked.token_hash) == revoked


async def test_concurrent_rotations_have_exactly_one_winner(backend: Backend) -> None:
    await committed(backend.store, lambda uow: uow.refresh_tokens.add(a_token()))
    successors = iter(range(100, 100 + CONCURRENCY))

    async def rotate(uow: UnitOfWork) -> bool:
        return await uow.refresh_tokens.rotate("refresh-0001", a_token(next(successors)), NOW)

    results = await concurrently(backend, rotate)
    assert results.count(True) == 1
    async with backend.store.unit_of_work() as uow:
        rotated = await uow.refresh_tokens.get("refresh-0001")
        assert rotated is not None
        assert rotated.successor_hash is not None
        live = [await uow.refresh_tokens.get(f"refresh-{n:04d}")
                for n in range(100, 100 + CONCURRENCY)]
    assert [t.token_hash for t in live if t is not None] == [rotated.successor_hash]


async def rotated_pair(backend: Backend) -> None:
    """refresh-0001 rotated to refresh-0002, which is unused."""
    await committed(backend.store, lambda uow: uow.refresh_tokens.add(a_token()))
    await committed(backend.store,
                    lambda uow: uow.refresh_tokens.rotate("refresh-0001", a_token(2), NOW))


async def test_reissue_replaces_the_unused_successor(backend: Backend) -> None:
    await rotated_pair(backend)
    async with backend.store.unit_of_work() as uow:
        assert await uow.refresh_tokens.reissue("refresh-0001", "refresh-0002", a_token(3))
        # The pointer moved: the old expectation no longer holds.
        assert not await uow.refresh_tokens.reissue("refresh-0001", "refresh-0002", a_token(4))
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        parent = await uow.refresh_tokens.get("refresh-0001")
        assert parent == a_token(status=RefreshStatus.ROTATED, successor_hash="refresh-0003",
                                 rotated_at=NOW)  # the window still counts from the rotation
        assert await uow.refresh_tokens.get("refresh-0002") == a_token(
            2, status=RefreshStatus.REVOKED)
        assert await uow.refresh_tokens.get("refresh-0003") == a_token(3)
        assert await uow.refresh_tokens.get("refresh-0004") is None


@pytest.mark.parametrize("successor_status", [RefreshStatus.ROTATED, RefreshStatus.REVOKED],
                         ids=["successor-used", "successor-revoked"])
async def test_reissue_refuses_once_the_successor_is_not_active(
    backend: Backend, successor_status: RefreshStatus
) -> None:
    await rotated_pair(backend)
    if successor_status is RefreshStatus.ROTATED:
        await committed(backend.store,
                        lambda uow: uow.refresh_tokens.rotate("refresh-0002", a_token(5), NOW))
    else:
        await committed(backend.store, lambda uow: uow.refresh_tokens.revoke_family("family-1"))
    async with backend.store.unit_of_work() as uow:
        before = await uow.refresh_tokens.get("refresh-0001")
        assert not await uow.refresh_tokens.reissue("refresh-0001", "refresh-0002", a_token(3))
        await uow.commit()  # False wrote nothing, even when committed
    async with backend.store.unit_of_work() as uow:
        assert await uow.refresh_tokens.get("refresh-0001") == before
        assert await uow.refresh_tokens.get("refresh-0003") is None
        second = await uow.refresh_tokens.get("refresh-0002")
        assert second is not None
        assert second.status is successor_status


async def test_concurrent_reissues_have_exactly_one_winner(backend: Backend) -> None:
    await rotated_pair(backend)
    successors = iter(range(100, 100 + CONCURRENCY))

    async def reissue(uow: UnitOfWork) -> bool:
        return await uow.refresh_tokens.reissue("refresh-0001", "refresh-0002",
                                                a_token(next(successors)))

    results = await concurrently(backend, reissue)
    assert results.count(True) == 1
    async with backend.store.unit_of_work() as uow:
        parent = await uow.refresh_tokens.get("refresh-0001")
        assert parent is not None
        assert parent.successor_hash is not None
        live = [await uow.refresh_tokens.get(f"refresh-{n:04d}")
                for n in range(100, 100 + CONCURRENCY)]
        replaced = await uow.refresh_tokens.get("refresh-0002")
    assert [t.token_hash for t in live if t is not None] == [parent.successor_hash]
    assert replaced is not None
    assert replaced.status is RefreshStatus.REVOKED


async def test_revoke_family_revokes_every_live_token_of_that_family_only(
    backend: Backend,
) -> None:
    async with backend.store.unit_of_work() as uow:
        await uow.refresh_tokens.add(a_token(1, status=RefreshStatus.ROTATED))
        await uow.refresh_tokens.add(a_token(2, status=RefreshStatus.ROTATED))
        await uow.refresh_tokens.add(a_token(3))
        await uow.refresh_tokens.add(a_token(4, status=RefreshStatus.REVOKED))
        await uow.refresh_tokens.add(a_token(5, family_id="family-2"))
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        assert await uow.refresh_tokens.revoke_family("family-1") == 3
        assert await uow.refresh_tokens.revoke_family("family-1") == 0
        assert await uow.refresh_tokens.revoke_family("no-such-family") == 0
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        for n in range(1, 5):
            token = await uow.refresh_tokens.get(f"refresh-{n:04d}")
            assert token is not None
            assert token.status is RefreshStatus.REVOKED
        assert await uow.refresh_tokens.get("refresh-0005") == a_token(5, family_id="family-2")
        assert await uow.refresh_tokens.rotate("refresh-0003", a_token(6), NOW) is False


async def test_revoking_a_family_catches_a_successor_committed_meanwhile(
    backend: Backend,
) -> None:
    # A rotation holds its row while a revocation of the family waits for it: once the rotation
    # commits, its new successor must be revoked too, or it would outlive its family.
    await committed(backend.store, lambda uow: uow.refresh_tokens.add(a_token()))
    async with backend.store.unit_of_work() as rotating:
        assert await rotating.refresh_tokens.rotate("refresh-0001", a_token(2), NOW)
        revoking = asyncio.create_task(committed(
            backend.store, lambda uow: uow.refresh_tokens.revoke_family("family-1")))
        await asyncio.sleep(0.3)  # the revocation now waits on the row (or the write lock)
        await rotating.commit()
    await revoking
    async with backend.store.unit_of_work() as uow:
        for n in (1, 2):
            token = await uow.refresh_tokens.get(f"refresh-{n:04d}")
            assert token is not None
            assert token.status is RefreshStatus.REVOKED


async def test_reissues_racing_a_family_revocation_leave_nothing_active(backend: Backend) -> None:
    # Grace reissues and revocations of one family at once: no deadlock (both lock rows in one
    # order), and whatever the interleaving, the revocation wins over every successor.
    await rotated_pair(backend)
    successors = iter(range(100, 100 + CONCURRENCY))

    async def either(uow: UnitOfWork) -> object:
        n = next(successors)
        if n % 2:
            return await uow.refresh_tokens.revoke_family("family-1")
        return await uow.refresh_tokens.reissue("refresh-0001", "refresh-0002", a_token(n))

    await concurrently(backend, either)
    async with backend.store.unit_of_work() as uow:
        tokens = [await uow.refresh_tokens.get(f"refresh-{n:04d}")
                  for n in (1, 2, *range(100, 100 + CONCURRENCY))]
    assert [t.token_hash for t in tokens if t is not None and t.status is RefreshStatus.ACTIVE] \
        == []


async def test_refresh_purge_deletes_expired_tokens_in_batches(backend: Backend) -> None:
    async with backend.store.unit_of_work() as uow:
        for n in range(5):
            await uow.refresh_tokens.add(a_token(n, expires_at=NOW - 1 - n))
        await uow.refresh_tokens.add(a_token(10, expires_at=NOW))
        await uow.commit()
    batches = []
    for _ in range(4):
        async with backend.store.unit_of_work() as uow:
            batches.append(await uow.refresh_tokens.purge(NOW, 2))
            await uow.commit()
    assert batches == [2, 2, 1, 0]
    async with backend.store.unit_of_work() as uow:
        assert await uow.refresh_tokens.get("refresh-0010") is not None
        assert all([await uow.refresh_tokens.get(f"refresh-{n:04d}") is None for n in range(5)])


# ----------------------------------------------------------------------------- browser sessions


async def test_browser_session_round_trip_and_duplicate(backend: Backend) -> None:
    sessions = [a_session(1), a_session(2, status=BrowserSessionStatus.REVOKED)]
    async with backend.store.unit_of_work() as uow:
        assert await uow.browser_sessions.get("session-0001") is None
        for session in sessions:
            await uow.browser_sessions.add(session)
        with pytest.raises(AlreadyExistsError):
            await uow.browser_sessions.add(a_session(1, user_id="sub-eve"))
        await uow.commit()
    for read_only in (False, True):  # SQLite's read-only units of work read inline
        async with backend.store.unit_of_work(read_only=read_only) as uow:
            assert [await uow.browser_sessions.get(s.session_hash) for s in sessions] == sessions
            assert await uow.browser_sessions.get("unknown") is None


async def test_browser_session_revoke_is_single_use_and_never_revived(backend: Backend) -> None:
    await committed(backend.store, lambda uow: uow.browser_sessions.add(a_session()))
    async with backend.store.unit_of_work() as uow:
        assert await uow.browser_sessions.revoke("session-0001") is True
        assert await uow.browser_sessions.revoke("session-0001") is False
        assert await uow.browser_sessions.revoke("unknown") is False
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        # The same id cannot come back as active: the revoked row keeps its key until purged.
        with pytest.raises(AlreadyExistsError):
            await uow.browser_sessions.add(a_session())
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        assert await uow.browser_sessions.get("session-0001") == a_session(
            status=BrowserSessionStatus.REVOKED
        )


async def test_revoke_all_for_user_revokes_that_users_active_sessions_only(
    backend: Backend,
) -> None:
    async with backend.store.unit_of_work() as uow:
        for n in range(1, 4):
            await uow.browser_sessions.add(a_session(n))
        await uow.browser_sessions.add(a_session(4, status=BrowserSessionStatus.REVOKED))
        await uow.browser_sessions.add(a_session(5, user_id="sub-bob"))
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        assert await uow.browser_sessions.revoke_all_for_user("sub-ada") == 3
        assert await uow.browser_sessions.revoke_all_for_user("sub-ada") == 0
        assert await uow.browser_sessions.revoke_all_for_user("sub-nobody") == 0
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        for n in range(1, 5):
            stored = await uow.browser_sessions.get(f"session-{n:04d}")
            assert stored is not None
            assert stored.status is BrowserSessionStatus.REVOKED
        assert await uow.browser_sessions.get("session-0005") == a_session(5, user_id="sub-bob")


async def test_concurrent_revokes_have_exactly_one_winner(backend: Backend) -> None:
    await committed(backend.store, lambda uow: uow.browser_sessions.add(a_session()))

    async def revoke(uow: UnitOfWork) -> bool:
        return await uow.browser_sessions.revoke("session-0001")

    results = await concurrently(backend, revoke)
    assert results.count(True) == 1


async def test_concurrent_signouts_revoke_each_session_exactly_once(backend: Backend) -> None:
    """Sign-outs of single sessions racing "sign out everywhere": every session ends, and the
    counts add up to the number of sessions (no session is revoked twice)."""
    sessions = 5
    async with backend.store.unit_of_work() as uow:
        for n in range(sessions):
            await uow.browser_sessions.add(a_session(n))
        await uow.commit()
    turn = iter(range(CONCURRENCY))

    async def sign_out(uow: UnitOfWork) -> int:
        i = next(turn)
        if i % 2:
            return await uow.browser_sessions.revoke_all_for_user("sub-ada")
        return int(await uow.browser_sessions.revoke(f"session-{i // 2 % sessions:04d}"))

    results = await concurrently(backend, sign_out)
    assert sum(results) == sessions
    async with backend.store.unit_of_work() as uow:
        for n in range(sessions):
            stored = await uow.browser_sessions.get(f"session-{n:04d}")
            assert stored is not None
            assert stored.status is BrowserSessionStatus.REVOKED


async def test_browser_session_purge_deletes_expired_sessions_in_batches(
    backend: Backend,
) -> None:
    async with backend.store.unit_of_work() as uow:
        for n in range(4):
            await uow.browser_sessions.add(a_session(n, expires_at=NOW - 1 - n))
        await uow.browser_sessions.add(
            a_session(4, expires_at=NOW - 10, status=BrowserSessionStatus.REVOKED)
        )
        await uow.browser_sessions.add(a_session(10, expires_at=NOW))  # at the cut-off: kept
        await uow.commit()
    batches = []
    for _ in range(4):
        async with backend.store.unit_of_work() as uow:
            batches.append(await uow.browser_sessions.purge(NOW, 2))
            await uow.commit()
    assert batches == [2, 2, 1, 0]
    async with backend.store.unit_of_work() as uow:
        assert await uow.browser_sessions.get("session-0010") is not None
        assert all([await uow.browser_sessions.get(f"session-{n:04d}") is None for n in range(5)])


# -------------------------------------------------------------------------------------- secrets


def sealed(value: bytes) -> StoredSecret:
    return StoredSecret(value, SecretEncryption.AES_256_GCM)


def plain(value: bytes) -> StoredSecret:
    return StoredSecret(value, SecretEncryption.NONE)


async def test_secrets(backend: Backend) -> None:
    key = sealed(bytes(range(256)))  # every byte value, NUL included
    async with backend.store.unit_of_work() as uow:
        assert await uow.secrets.get("hmac") is None
        assert await uow.secrets.names() == []
        assert await uow.secrets.add_if_absent("hmac", key) == key
        assert await uow.secrets.add_if_absent("hmac", sealed(b"second")) == key  # kept
        assert await uow.secrets.add_if_absent("a-session", plain(b"s")) == plain(b"s")
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        assert await uow.secrets.get("hmac") == key
        assert await uow.secrets.get("a-session") == plain(b"s")
        assert await uow.secrets.names() == ["a-session", "hmac"]


async def test_seal_replaces_plaintext_only(backend: Backend) -> None:
    async with backend.store.unit_of_work() as uow:
        await uow.secrets.add_if_absent("old", plain(b"0.1 plaintext"))
        await uow.secrets.add_if_absent("new", sealed(b"ciphertext"))
        assert await uow.secrets.seal("old", sealed(b"sealed old")) is True
        assert await uow.secrets.seal("old", sealed(b"sealed twice")) is False  # sealed already
        assert await uow.secrets.seal("new", sealed(b"other")) is False
        assert await uow.secrets.seal("absent", sealed(b"x")) is False
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        assert await uow.secrets.get("old") == sealed(b"sealed old")
        assert await uow.secrets.get("new") == sealed(b"ciphertext")
        assert await uow.secrets.names() == ["new", "old"]


async def test_workers_sealing_at_once_seal_once(backend: Backend) -> None:
    n = 10
    async with backend.store.unit_of_work() as uow:
        await uow.secrets.add_if_absent("hmac", plain(b"plaintext"))
        await uow.commit()
    values = iter(sealed(f"sealed-{i}".encode()) for i in range(n))

    async def seal(uow: UnitOfWork) -> bool:
        return await uow.secrets.seal("hmac", next(values))

    results = await concurrently(backend, seal, n=n, workers=n)
    assert sorted(results) == [False] * (n - 1) + [True]
    async with backend.store.unit_of_work() as uow:
        stored = await uow.secrets.get("hmac")
    assert stored is not None
    assert stored.encryption is SecretEncryption.AES_256_GCM
    assert stored.value.startswith(b"sealed-")


async def test_workers_starting_at_once_agree_on_one_secret(backend: Backend) -> None:
    n = 10
    values = iter(sealed(f"candidate-{i}".encode()) for i in range(n))

    async def add(uow: UnitOfWork) -> StoredSecret:
        return await uow.secrets.add_if_absent("hmac", next(values))

    results = await concurrently(backend, add, n=n, workers=n)
    assert len(set(results)) == 1
    async with backend.store.unit_of_work() as uow:
        assert await uow.secrets.get("hmac") == results[0]


# ------------------------------------------------------------------------------- signing keys


def a_key(kid: str, alg: str = "RS256", active_from: float = NOW) -> SigningKeyRecord:
    return SigningKeyRecord(kid, alg, f"signing_key:{alg}:{kid}", NOW, active_from)


async def test_signing_keys_first_key_once_per_alg(backend: Backend) -> None:
    assert await committed(backend.store, lambda uow: uow.signing_keys.add_first(a_key("k1")))
    # A second "first" key of RS256 (another kid) or the same kid again: refused.
    for refused in (a_key("k2"), a_key("k1"), a_key("k1", "ES256")):
        async with backend.store.unit_of_work() as uow:
            assert not await uow.signing_keys.add_first(refused)
            await uow.commit()
    assert await committed(backend.store,
                           lambda uow: uow.signing_keys.add_first(a_key("e1", "ES256")))
    async with backend.store.unit_of_work(read_only=True) as uow:
        assert await uow.signing_keys.list() == [a_key("e1", "ES256"), a_key("k1")]


async def test_signing_key_rotation_ends_the_newest_and_adds_the_successor(
    backend: Backend,
) -> None:
    await committed(backend.store, lambda uow: uow.signing_keys.add_first(a_key("k1")))
    successor = a_key("k2", active_from=NOW + 120)
    assert await committed(backend.store, lambda uow: uow.signing_keys.rotate(
        "k1", NOW + 120, NOW + 3720, successor))
    # k1 is no longer the newest: rotating from it again changes nothing.
    assert not await committed(backend.store, lambda uow: uow.signing_keys.rotate(
        "k1", NOW + 130, NOW + 3730, a_key("k3", active_from=NOW + 130)))
    with pytest.raises(AlreadyExistsError):
        async with backend.store.unit_of_work() as uow:
            await uow.signing_keys.rotate("k2", NOW + 140, NOW + 3740, a_key("k1"))
    async with backend.store.unit_of_work(read_only=True) as uow:
        listed = await uow.signing_keys.list()
    assert listed == [dataclasses.replace(a_key("k1"), signs_until=NOW + 120,
                                          retire_after=NOW + 3720), successor]


async def test_concurrent_signing_key_rotations_leave_one_newest_key(backend: Backend) -> None:
    await committed(backend.store, lambda uow: uow.signing_keys.add_first(a_key("k0")))
    kids = iter(range(1, CONCURRENCY + 1))

    async def rotate(uow: UnitOfWork) -> bool:
        return await uow.signing_keys.rotate(
            "k0", NOW + 60, NOW + 3660, a_key(f"k{next(kids)}", active_from=NOW + 60))

    results = await concurrently(backend, rotate)
    assert results.count(True) == 1
    async with backend.store.unit_of_work(read_only=True) as uow:
        listed = await uow.signing_keys.list()
    assert len(listed) == 2
    assert [k.signs_until for k in listed] == [NOW + 60, None]


# --------------------------------------------------------------------- units of work (SQL only)


async def test_leaving_without_commit_rolls_back(sql_backend: Backend) -> None:
    store = sql_backend.store
    async with store.unit_of_work() as uow:
        await uow.clients.add(a_client())
        await uow.users.add(a_user())
        await uow.device_authorizations.add(a_device())
        await uow.refresh_tokens.add(a_token())
        await uow.secrets.add_if_absent("hmac", sealed(b"k"))
    async with store.unit_of_work() as uow:
        assert await uow.clients.list() == []
        assert await uow.users.list() == []
        assert await uow.device_authorizations.get_by_device_code("device-0001") is None
        assert await uow.refresh_tokens.get("refresh-0001") is None
        assert await uow.secrets.names() == []


async def test_an_error_rolls_back(sql_backend: Backend) -> None:
    store = sql_backend.store
    await committed(store, lambda uow: uow.device_authorizations.add(a_device()))

    async def decide_then_fail() -> None:
        async with store.unit_of_work() as uow:
            assert await uow.device_authorizations.transition(
                approved(a_device()), DeviceStatus.PENDING
            )
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await decide_then_fail()
    async with store.unit_of_work() as uow:
        assert await uow.device_authorizations.get_by_device_code("device-0001") == a_device()


async def test_work_after_commit_is_a_new_transaction(sql_backend: Backend) -> None:
    store = sql_backend.store
    async with store.unit_of_work() as uow:
        await uow.clients.add(a_client("kept"))
        await uow.commit()
        await uow.clients.add(a_client("dropped"))
    async with store.unit_of_work() as uow:
        assert [c.client_id for c in await uow.clients.list()] == ["kept"]


async def test_rolled_back_compare_and_set_can_be_won_again(sql_backend: Backend) -> None:
    store = sql_backend.store
    await committed(store, lambda uow: uow.refresh_tokens.add(a_token()))
    async with store.unit_of_work() as uow:
        assert await uow.refresh_tokens.rotate("refresh-0001", a_token(2), NOW) is True
    async with store.unit_of_work() as uow:
        assert await uow.refresh_tokens.get("refresh-0002") is None  # rolled back with it
        assert await uow.refresh_tokens.rotate("refresh-0001", a_token(2), NOW) is True
        await uow.commit()


async def test_an_integrity_error_that_is_no_duplicate_is_not_already_exists(
    sql_backend: Backend,
) -> None:
    # A status the schema's CHECK does not know is a bug: it must surface as itself, not as
    # "taken, draw another code" (which the service would retry).
    # Only a taken key is absorbed (ON CONFLICT DO NOTHING); a bug aborts the unit of work (on
    # PostgreSQL the whole transaction), nothing of it is stored, and the store goes on.
    bogus = dataclasses.replace(a_device(), status=SimpleNamespace(value="bogus"))  # type: ignore[arg-type]
    async with sql_backend.store.unit_of_work() as uow:
        with pytest.raises(IntegrityError):
            await uow.device_authorizations.add(bogus)
    async with sql_backend.store.unit_of_work() as uow:
        await uow.device_authorizations.add(a_device(2))
        await uow.commit()
    async with sql_backend.store.unit_of_work() as uow:
        assert await uow.device_authorizations.get_by_device_code("device-0001") is None
        assert await uow.device_authorizations.get_by_device_code("device-0002") == a_device(2)


# ------------------------------------------------------------------------------ token denylist


def an_entry(value: str = "jti-1", kind: DenyKind = DenyKind.JTI, **changes: object
             ) -> DeniedToken:
    entry = DeniedToken(kind, value, expires_at=NOW + 3600.5, created_at=NOW + 0.25)
    return dataclasses.replace(entry, **changes)  # type: ignore[arg-type]


async def test_denylist_add_is_idempotent_and_the_first_entry_stays(backend: Backend) -> None:
    async with backend.store.unit_of_work() as uow:
        assert await uow.denylist.add(an_entry())
        assert not await uow.denylist.add(an_entry(expires_at=NOW + 9999))
        # Same value, other kind: a separate entry.
        assert await uow.denylist.add(an_entry(kind=DenyKind.FAMILY))
        await uow.commit()
    async with backend.store.unit_of_work(read_only=True) as uow:
        entries = await uow.denylist.since(NOW - 1, NOW)
    assert sorted(entries, key=lambda e: e.kind) == [
        an_entry(kind=DenyKind.FAMILY), an_entry()]


async def test_denylist_since_reads_new_unexpired_entries_only(backend: Backend) -> None:
    async with backend.store.unit_of_work() as uow:
        await uow.denylist.add(an_entry("old", created_at=NOW - 10))
        await uow.denylist.add(an_entry("new", created_at=NOW))
        await uow.denylist.add(an_entry("later", created_at=NOW + 5))
        await uow.denylist.add(an_entry("expired", created_at=NOW, expires_at=NOW + 1))
        await uow.commit()
    async with backend.store.unit_of_work(read_only=True) as uow:
        found = await uow.denylist.since(NOW, NOW + 1)
    assert sorted(e.value for e in found) == ["later", "new"]  # created_from is inclusive


async def test_concurrent_denylist_adds_store_one_entry(backend: Backend) -> None:
    async def add(uow: UnitOfWork) -> bool:
        return await uow.denylist.add(an_entry(kind=DenyKind.FAMILY))

    assert (await concurrently(backend, add)).count(True) == 1


async def test_denylist_purge_deletes_expired_entries_in_batches(backend: Backend) -> None:
    async with backend.store.unit_of_work() as uow:
        for n in range(5):
            await uow.denylist.add(an_entry(f"gone-{n}", expires_at=NOW - 1 - n))
        await uow.denylist.add(an_entry("kept", expires_at=NOW))  # at the cut-off: kept
        # An expired jti entry must not take a live family entry of the same value with it.
        await uow.denylist.add(an_entry("gone-0", kind=DenyKind.FAMILY, expires_at=NOW + 60))
        await uow.commit()
    batches = []
    for _ in range(4):
        async with backend.store.unit_of_work() as uow:
            batches.append(await uow.denylist.purge(NOW, 2))
            await uow.commit()
    assert batches == [2, 2, 1, 0]
    async with backend.store.unit_of_work(read_only=True) as uow:
        left = await uow.denylist.since(0, 0)
    assert sorted((e.kind.value, e.value) for e in left) == [("family", "gone-0"),
                                                             ("jti", "kept")]


async def test_families_of_a_user_are_those_with_a_token_not_revoked(backend: Backend) -> None:
    async with backend.store.unit_of_work() as uow:
        await uow.refresh_tokens.add(a_token(1, "family-b"))
        await uow.refresh_tokens.add(a_token(2, "family-a", status=RefreshStatus.ROTATED))
        await uow.refresh_tokens.add(a_token(3, "family-a"))
        await uow.refresh_tokens.add(a_token(4, "family-c", status=RefreshStatus.REVOKED))
        await uow.refresh_tokens.add(a_token(5, "family-d", user_id="sub-bob"))
        await uow.commit()
    async with backend.store.unit_of_work(read_only=True) as uow:
        assert list(await uow.refresh_tokens.families("sub-ada")) == ["family-a", "family-b"]
        assert list(await uow.refresh_tokens.families("sub-nobody")) == []


async def test_the_schema_refuses_a_second_newest_key_of_one_alg(sql_backend: Backend) -> None:
    # The partial unique index backs the compare-and-set: even a plain INSERT cannot store two
    # keys of RS256 that both sign on.
    from sqlalchemy import insert

    from deviceflow.storage.sql import tables

    await committed(sql_backend.store, lambda uow: uow.signing_keys.add_first(a_key("k1")))
    row = {"kid": "k2", "alg": "RS256", "secret_name": "s", "created_at": NOW,
           "active_from": NOW, "signs_until": None, "retire_after": None}
    async with sql_backend.store.unit_of_work() as uow:
        with pytest.raises(IntegrityError):
            await uow.connection.execute(insert(tables.signing_keys), row)  # type: ignore[attr-defined]
    async with sql_backend.store.unit_of_work() as uow:
        await uow.connection.execute(  # type: ignore[attr-defined]
            insert(tables.signing_keys), row | {"signs_until": NOW, "retire_after": NOW})
        await uow.commit()


# ----------------------------------------------------------------------------- signed-in devices


def a_grant(family_id: str = "family-1", **changes: object) -> GrantRecord:
    grant = GrantRecord(
        family_id=family_id,
        user_id="sub-ada",
        client_id="cli",
        approved_at=NOW - 10.5,
        origin=RequestOrigin(ip_address="2001:db8::1", user_agent="curl/8.5.0 (ünïcode)"),
        expires_at=NOW + 7 * 86_400.5,
    )
    return dataclasses.replace(grant, **changes)  # type: ignore[arg-type]


async def test_grant_add_refuses_a_taken_family_id(backend: Backend) -> None:
    await committed(backend.store, lambda uow: uow.grants.add(a_grant()))
    async with backend.store.unit_of_work() as uow:
        with pytest.raises(AlreadyExistsError):
            await uow.grants.add(a_grant(user_id="sub-bob"))
        await uow.grants.add(a_grant("family-2"))  # still usable
        await uow.commit()


async def test_active_lists_families_with_a_live_token_and_their_origin(
    backend: Backend,
) -> None:
    async def fill(uow: UnitOfWork) -> None:
        # family-1: rotated once (the live token is the successor), with its origin recorded.
        await uow.grants.add(a_grant())
        await uow.refresh_tokens.add(a_token(1))
        assert await uow.refresh_tokens.rotate(
            "refresh-0001", a_token(2, issued_at=NOW + 60.5), NOW + 60.5)
        # family-2: bob's, at another client, no origin recorded (from before the table).
        await uow.refresh_tokens.add(a_token(3, family_id="family-2", user_id="sub-bob",
                                             client_id="tv"))
        # Not signed in: revoked, expired, past the family's end, only rotated.
        await uow.grants.add(a_grant("family-3"))
        await uow.refresh_tokens.add(a_token(4, family_id="family-3",
                                             status=RefreshStatus.REVOKED))
        await uow.refresh_tokens.add(a_token(5, family_id="family-4", expires_at=NOW))
        await uow.refresh_tokens.add(a_token(6, family_id="family-5", family_expires_at=NOW))
        await uow.refresh_tokens.add(a_token(7, family_id="family-6",
                                             status=RefreshStatus.ROTATED))

    await committed(backend.store, fill)
    ada = ActiveGrant(
        family_id="family-1", user_id="sub-ada", client_id="cli",
        scope=("openid", "offline_access"), last_used_at=NOW + 60.5, approved_at=NOW - 10.5,
        origin=a_grant().origin,
    )
    bob = ActiveGrant(
        family_id="family-2", user_id="sub-bob", client_id="tv",
        scope=("openid", "offline_access"), last_used_at=NOW, approved_at=None, origin=None,
    )
    for read_only in (False, True):
        async with backend.store.unit_of_work(read_only=read_only) as uow:
            g = uow.grants
            assert list(await g.active(NOW)) == [ada, bob]
            assert list(await g.active(NOW, user_id="sub-ada")) == [ada]
            assert list(await g.active(NOW, client_id="tv")) == [bob]
            assert list(await g.active(NOW, user_id="sub-ada", client_id="tv")) == []
            assert list(await g.active(NOW, family_id="family-2")) == [bob]
            assert list(await g.active(NOW, user_id="sub-ada", family_id="family-2")) == []
            assert list(await g.active(NOW, family_id="family-3")) == []
            assert list(await g.active(NOW + 86_400 + 61)) == []  # every token expired


async def test_grant_purge_deletes_records_past_the_family_end(backend: Backend) -> None:
    async def fill(uow: UnitOfWork) -> None:
        for n in range(5):
            await uow.grants.add(a_grant(f"old-{n}", expires_at=NOW - 1))
        await uow.grants.add(a_grant("live"))
        await uow.refresh_tokens.add(a_token(1, family_id="live"))

    await committed(backend.store, fill)
    assert await committed(backend.store, lambda uow: uow.grants.purge(NOW, 3)) == 3
    assert await committed(backend.store, lambda uow: uow.grants.purge(NOW, 3)) == 2
    assert await committed(backend.store, lambda uow: uow.grants.purge(NOW, 3)) == 0
    async with backend.store.unit_of_work(read_only=True) as uow:
        [live] = await uow.grants.active(NOW)
    assert live.origin == a_grant().origin


async def test_concurrent_revocations_of_every_family_count_each_once(backend: Backend) -> None:
    """Two (or fifty) "sign out all devices" at once: each family is revoked by exactly one."""
    from deviceflow.server.service.audit import AuditService
    from deviceflow.server.service.revocation import end_selected_logins_in

    audit = AuditService(backend.store, lambda: NOW)

    async def sign_out_all(uow: UnitOfWork) -> int:
        ended = await end_selected_logins_in(
            uow, actor="person", now=NOW, access_token_lifetime=3600, audit=audit,
            user_id="sub-ada")
        return len(ended)

    families = 8

    async def fill(uow: UnitOfWork) -> None:
        for n in range(families):
            await uow.grants.add(a_grant(f"family-{n}"))
            await uow.refresh_tokens.add(a_token(n, family_id=f"family-{n}"))

    await committed(backend.store, fill)
    counts = await concurrently(
        backend, sign_out_all, n=10, workers=5,
    )
    assert sum(counts) == families
    async with backend.store.unit_of_work(read_only=True) as uow:
        assert list(await uow.grants.active(NOW)) == []
        tokens = [await uow.refresh_tokens.get(f"refresh-{n:04d}") for n in range(families)]
    assert {t.status for t in tokens if t is not None} == {RefreshStatus.REVOKED}
    async with backend.store.unit_of_work(read_only=True) as uow:
        denied = await uow.denylist.since(NOW - 1, NOW)
        revoked = await uow.audit_log.query(AuditQuery())
    assert {e.value for e in denied} == {f"family-{n}" for n in range(families)}
    assert sorted(e.family_id or "" for e in revoked) == sorted(
        f"family-{n}" for n in range(families))  # one audit row per family, none twice
