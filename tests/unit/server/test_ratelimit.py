"""Budgets that hold when requests race (RFC 8628 §5.1): spend before the attempt is judged
(hit-then-test), all or nothing, a refund that gives back exactly one's own unit, failing closed,
and one warning per budget and key per window. In-process storage; Redis is in
tests/integration/web/test_limits_race.py."""

from __future__ import annotations

import asyncio
import logging

import pytest

from deviceflow.server.ratelimit import (
    LIVE_CODES,
    UNAVAILABLE_RETRY_AFTER,
    BruteForcePolicy,
    Check,
    Limiter,
    Verdict,
    ip_key,
    key_digest,
)

pytestmark = pytest.mark.anyio

POLICY = BruteForcePolicy(code_per_session="2/minute", code_per_ip="3/hour",
                          code_global="100/hour", code_per_account="5/hour",
                          login_per_account="1/15 minutes", login_per_ip="30/hour",
                          device_authorization_per_ip="4/minute", device_codes_per_client=3)


async def test_allowed_until_the_budget_is_spent() -> None:
    limiter = Limiter(POLICY)
    checks = [limiter.check("code_per_session", "s1")]
    assert (await limiter.spend(checks)).allowed
    assert (await limiter.spend(checks)).allowed
    verdict = await limiter.spend(checks)
    assert not verdict.allowed
    assert verdict.tripped == ("code_per_session",)
    assert verdict.held is None
    assert 1 <= verdict.retry_after <= 60


async def test_concurrent_spends_let_exactly_the_limit_through() -> None:
    """What check-then-count got wrong: 3 × the limit at once, exactly the limit through."""
    limiter = Limiter(POLICY)
    checks = [limiter.check("code_per_ip", "198.51.100.7")]
    verdicts = await asyncio.gather(*(limiter.spend(checks) for _ in range(9)))
    assert sum(v.allowed for v in verdicts) == 3


async def test_keys_and_limits_are_independent() -> None:
    limiter = Limiter(POLICY)
    assert (await limiter.spend([limiter.check("login_per_account", "alice")])).allowed
    assert not (await limiter.spend([limiter.check("login_per_account", "alice")])).allowed
    assert (await limiter.spend([limiter.check("login_per_account", "bob")])).allowed
    assert (await limiter.spend([limiter.check("login_per_ip", "alice")])).allowed


async def test_a_refused_attempt_spends_nothing_from_any_budget() -> None:
    """All or nothing: the session's unit taken before the global budget refused is given
    back, so a throttled attempt costs no budget at all."""
    limiter = Limiter(BruteForcePolicy(code_per_session="2/minute", code_global="1/hour"))
    session = limiter.check("code_per_session", "s1")
    assert (await limiter.spend([session, limiter.check("code_global", "all")])).allowed
    for _ in range(5):
        refused = await limiter.spend([session, limiter.check("code_global", "all")])
        assert refused.tripped == ("code_global",)
    # The session still has its second unit: five refusals took nothing from it.
    assert (await limiter.spend([session])).allowed
    assert not (await limiter.spend([session])).allowed


async def test_a_throttled_attacker_drains_no_shared_budget() -> None:
    limiter = Limiter(BruteForcePolicy(code_per_session="1/minute", code_global="3/hour"))
    attacker = [limiter.check("code_per_session", "bot"), limiter.check("code_global", "all")]
    verdicts = [await limiter.spend(attacker) for _ in range(10)]
    assert [v.allowed for v in verdicts].count(True) == 1
    for n in range(2):  # two more people still find the global budget
        assert (await limiter.spend([limiter.check("code_per_session", f"person{n}"),
                                     limiter.check("code_global", "all")])).allowed


async def test_longest_wait_among_spent_budgets() -> None:
    limiter = Limiter(POLICY)
    checks = [limiter.check("code_per_session", "s1"), limiter.check("code_per_ip", "1.2.3.4"),
              limiter.check("code_global", "all")]
    for _ in range(2):
        assert (await limiter.spend(checks)).allowed
    assert (await limiter.spend(checks[1:])).allowed
    verdict = await limiter.spend(checks)
    assert verdict.tripped == ("code_per_session", "code_per_ip")
    assert 3500 <= verdict.retry_after <= 3600  # the hourly per-IP window, not the minute one


async def test_refund_gives_back_exactly_one_unit() -> None:
    limiter = Limiter(POLICY)
    checks = [limiter.check("code_per_ip", "1.2.3.4")]
    right = await limiter.spend(checks)
    assert right.allowed
    await limiter.refund(right)
    await limiter.refund(right)  # a second refund of the same attempt gives back nothing
    assert [(await limiter.spend(checks)).allowed for _ in range(4)] == [True] * 3 + [False]


async def test_interleaved_right_attempts_never_admit_more_wrong_ones() -> None:
    """Wrong attempts admitted ≤ limit, however right ones (which refund) interleave."""
    limiter = Limiter(POLICY)
    checks = [limiter.check("code_per_ip", "1.2.3.4")]

    async def attempt(right: bool) -> bool:
        verdict = await limiter.spend(checks)
        await asyncio.sleep(0)  # judged: other attempts run meanwhile
        if verdict.allowed and right:
            await limiter.refund(verdict)
        return verdict.allowed and not right

    wrong_admitted = 0
    for _ in range(10):  # waves of six racing attempts, half of them right
        wave = await asyncio.gather(*(attempt(n % 2 == 0) for n in range(6)))
        wrong_admitted += sum(wave)
    assert 1 <= wrong_admitted <= 3
    # The right ones cost nothing: exactly the units no wrong attempt took are still free.
    free = [(await limiter.spend(checks)).allowed for _ in range(4)].count(True)
    assert free == 3 - wrong_admitted


async def test_refund_takes_no_unit_stamped_before_the_attempt() -> None:
    """A refund removes an entry stamped at or after its own start: never an older one, so
    the window after a refund is never looser than if the attempt had taken nothing."""
    limiter = Limiter(POLICY)
    checks = [limiter.check("code_per_ip", "1.2.3.4")]
    early = await limiter.spend(checks)
    assert early.allowed
    assert early.held is not None
    await asyncio.sleep(0.01)
    late = await limiter.spend(checks)
    assert late.held is not None
    await limiter.refund(late)
    storage = limiter._storage
    key = checks[0].item.key_for(checks[0].name, checks[0].key)
    stamps = [e.atime for e in storage.events[key]]  # type: ignore[attr-defined]
    assert len(stamps) == 1
    assert early.held.since <= stamps[0] < late.held.since


async def test_reset_clears_every_counter() -> None:
    limiter = Limiter(POLICY)
    checks = [limiter.check("login_per_account", "alice")]
    await limiter.spend(checks)
    await limiter.reset()
    assert (await limiter.spend(checks)).allowed


async def test_live_codes_window_is_the_code_lifetime() -> None:
    limiter = Limiter(POLICY)
    check = limiter.live_codes_check("tv", 600)
    assert check.name == LIVE_CODES
    assert check.item.amount == 3
    assert check.item.get_expiry() == 600
    assert [(await limiter.spend([check])).allowed for _ in range(4)] == [True] * 3 + [False]
    assert (await limiter.spend([limiter.live_codes_check("radio", 600)])).allowed


async def test_storage_outage_fails_closed_or_open_as_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limiter = Limiter(POLICY)

    async def down(*args: object, **kwargs: object) -> bool:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(limiter._limiter, "hit", down)
    checks = [limiter.check("code_per_ip", "1.2.3.4")]
    assert await limiter.spend(checks) == Verdict(False, UNAVAILABLE_RETRY_AFTER,
                                                  ("unavailable",))
    assert (await limiter.spend(checks, fail_open=True)).allowed
    await limiter.count(checks)  # a failed count never becomes a failed request


async def test_a_tripped_budget_warns_once_per_window_per_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = Limiter(POLICY)
    caplog.set_level(logging.WARNING, logger="deviceflow.ratelimit")
    for ip in ("198.51.100.7", "203.0.113.9"):
        for _ in range(20):
            await limiter.spend([limiter.check("code_per_ip", ip)])
    for _ in range(20):
        await limiter.spend([limiter.check("login_per_account", "alice")])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert sorted((r.budget, r.key_digest) for r in warnings) == sorted([  # type: ignore[attr-defined]
        ("code_per_ip", key_digest("198.51.100.7")),
        ("code_per_ip", key_digest("203.0.113.9")),
        ("login_per_account", key_digest("alice")),
    ])
    text = caplog.text
    assert "198.51.100.7" not in text
    assert "alice" not in text


def test_sync_storage_is_refused() -> None:
    with pytest.raises(ValueError, match="async"):
        Limiter(POLICY, "memory://")


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unknown", "unknown"),
    ],
    ids=["ipv4", "ipv6-per-64", "ipv6-same-64", "ipv4-mapped", "not-an-ip"],
)
def test_ip_key(address: str, key: str) -> None:
    assert ip_key(address) == key


def test_default_policy_matches_the_documented_budgets() -> None:
    assert BruteForcePolicy() == BruteForcePolicy(
        code_per_session="5/10 minutes", code_per_ip="20/hour", code_global="1000/hour",
        code_per_account="20/hour", login_per_account="5/15 minutes", login_per_ip="30/hour",
        device_authorization_per_ip="300/minute", device_codes_per_client=10_000,
    )


async def test_only_the_first_refusal_of_a_window_is_a_first_trip() -> None:
    """The audit log records ``first_trip`` refusals only: one per budget and key per window,
    not one per request of an attack past the budget."""
    limiter = Limiter(BruteForcePolicy(code_per_ip="1/hour", code_global="1000/hour"))

    def attempt(ip: str) -> list[Check]:
        return [limiter.check("code_per_ip", ip), limiter.check("code_global", "all")]

    assert (await limiter.spend(attempt("192.0.2.1"))).allowed
    refusals = [await limiter.spend(attempt("192.0.2.1")) for _ in range(3)]
    assert [(v.allowed, v.first_trip) for v in refusals] == [
        (False, True), (False, False), (False, False)]
    assert (await limiter.spend(attempt("192.0.2.2"))).allowed
    assert (await limiter.spend(attempt("192.0.2.2"))).first_trip  # another key: its own first


async def test_every_refusal_is_reported_by_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """``on_trip`` (the metrics' throttle counter) hears each refusing budget every time, unlike
    the warning, which is once per window; an outage failing closed is ``unavailable``, one
    failing open is no refusal."""
    trips: list[str] = []
    limiter = Limiter(POLICY, on_trip=trips.append)
    session, ip = limiter.check("code_per_session", "s1"), limiter.check("code_per_ip", "1.2.3.4")
    for _ in range(2):
        assert (await limiter.spend([session, ip])).allowed
    assert not (await limiter.spend([session, ip])).allowed
    assert not (await limiter.spend([session])).allowed
    assert trips == ["code_per_session", "code_per_session"]
    assert (await limiter.spend([ip])).allowed  # its third unit: refunded above, all or nothing
    assert not (await limiter.spend([session, ip])).allowed  # both spent: both reported
    assert trips[2:] == ["code_per_session", "code_per_ip"]

    async def down(*args: object, **kwargs: object) -> bool:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(limiter._limiter, "hit", down)
    assert not (await limiter.spend([ip])).allowed
    assert (await limiter.spend([ip], fail_open=True)).allowed
    assert trips[4:] == ["unavailable"]
