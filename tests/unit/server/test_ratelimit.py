"""Brute-force counters (RFC 8628 §5.1): verdict, hit, retry_after, and failing closed."""

from __future__ import annotations

import pytest

from deviceflow.server.ratelimit import (
    UNAVAILABLE_RETRY_AFTER,
    BruteForcePolicy,
    Limiter,
    Verdict,
    ip_key,
)

pytestmark = pytest.mark.anyio

POLICY = BruteForcePolicy(code_per_session="2/minute", code_per_ip="3/hour",
                          code_global="100/hour", code_per_account="5/hour",
                          login_per_account="1/15 minutes", login_per_ip="30/hour")


async def test_allowed_until_the_budget_is_spent() -> None:
    limiter = Limiter(POLICY)
    checks = [limiter.check("code_per_session", "s1")]
    assert await limiter.verdict(checks) == Verdict(True)
    await limiter.hit(checks)
    assert (await limiter.verdict(checks)).allowed
    await limiter.hit(checks)
    verdict = await limiter.verdict(checks)
    assert not verdict.allowed
    assert verdict.tripped == ("code_per_session",)
    assert 1 <= verdict.retry_after <= 60


async def test_verdict_does_not_count() -> None:
    limiter = Limiter(POLICY)
    checks = [limiter.check("login_per_account", "alice")]
    for _ in range(10):
        assert (await limiter.verdict(checks)).allowed


async def test_keys_and_limits_are_independent() -> None:
    limiter = Limiter(POLICY)
    await limiter.hit([limiter.check("login_per_account", "alice")])
    assert not (await limiter.verdict([limiter.check("login_per_account", "alice")])).allowed
    assert (await limiter.verdict([limiter.check("login_per_account", "bob")])).allowed
    assert (await limiter.verdict([limiter.check("login_per_ip", "alice")])).allowed


async def test_longest_wait_among_tripped_counters() -> None:
    limiter = Limiter(POLICY)
    checks = [limiter.check("code_per_session", "s1"), limiter.check("code_per_ip", "1.2.3.4"),
              limiter.check("code_global", "all")]
    for _ in range(3):
        await limiter.hit(checks)
    verdict = await limiter.verdict(checks)
    assert verdict.tripped == ("code_per_session", "code_per_ip")
    assert 3500 <= verdict.retry_after <= 3600  # the hourly per-IP window, not the minute one


async def test_reset_clears_every_counter() -> None:
    limiter = Limiter(POLICY)
    checks = [limiter.check("login_per_account", "alice")]
    await limiter.hit(checks)
    await limiter.reset()
    assert (await limiter.verdict(checks)).allowed


async def test_storage_outage_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = Limiter(POLICY)

    async def down(*args: object) -> bool:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(limiter._limiter, "test", down)
    monkeypatch.setattr(limiter._limiter, "hit", down)
    checks = [limiter.check("code_per_ip", "1.2.3.4")]
    assert await limiter.verdict(checks) == Verdict(False, UNAVAILABLE_RETRY_AFTER,
                                                   ("unavailable",))
    await limiter.hit(checks)  # a failed count never becomes a failed request


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
    )
