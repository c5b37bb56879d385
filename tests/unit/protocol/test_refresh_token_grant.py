"""The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2),
its reuse grace window, the family's absolute lifetime, and the offline_access rule."""

from __future__ import annotations

import dataclasses

import pytest

from deviceflow.protocol.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuthError,
    UnauthorizedClientError,
)
from deviceflow.protocol.grants import refresh_token as grant
from deviceflow.protocol.models import (
    DEVICE_CODE_GRANT,
    REFRESH_TOKEN_GRANT,
    Client,
    ClientType,
    RefreshStatus,
    RefreshToken,
    TokenPolicy,
    User,
)
from deviceflow.protocol.params import FormParams
from deviceflow.protocol.tokens import Grant

NOW = 1_800_000_000.0
CLI = Client("cli", "CLI", ClientType.PUBLIC, frozenset({DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT}),
             frozenset({"openid", "profile"}))
TOKEN = RefreshToken(
    token_hash="h1", family_id="fam", client_id="cli", user_id="u1",
    scope=("openid", "profile"), issued_at=NOW - 100, expires_at=NOW + 1000,
    auth_time=NOW - 200, family_expires_at=NOW + 5000, grant_type=DEVICE_CODE_GRANT,
)
GRACE = 60
# h1 rotated 10 s ago to h2, which is unused.
ROTATED = dataclasses.replace(TOKEN, status=RefreshStatus.ROTATED, successor_hash="h2",
                              rotated_at=NOW - 10)
SUCCESSOR = dataclasses.replace(TOKEN, token_hash="h2", issued_at=NOW - 10)


def req(scope: tuple[str, ...] | None = None) -> grant.RefreshRequest:
    return grant.RefreshRequest("plain", scope)


def refresh(token: RefreshToken | None, client: Client = CLI, now: float = NOW,
            successor: RefreshToken | None = None, scope: tuple[str, ...] | None = None,
            grace: int = GRACE) -> grant.RefreshDecision:
    return grant.refresh(req(scope), token, successor, client, now, grace)


@pytest.mark.parametrize(
    ("token", "client", "now", "error"),
    [
        (None, CLI, NOW, InvalidGrantError),
        (dataclasses.replace(TOKEN, client_id="other"), CLI, NOW, InvalidGrantError),
        (dataclasses.replace(TOKEN, status=RefreshStatus.REVOKED), CLI, NOW, InvalidGrantError),
        (TOKEN, CLI, TOKEN.expires_at, InvalidGrantError),
        (TOKEN, CLI, TOKEN.expires_at + 1, InvalidGrantError),
        (TOKEN, dataclasses.replace(CLI, grant_types=frozenset({DEVICE_CODE_GRANT})), NOW,
         UnauthorizedClientError),
        # The family's absolute end wins over a fresh sliding lifetime ...
        (dataclasses.replace(TOKEN, family_expires_at=NOW), CLI, NOW, InvalidGrantError),
        # ... and over the grace window: a dead family is not revived.
        (dataclasses.replace(ROTATED, family_expires_at=NOW - 1), CLI, NOW, InvalidGrantError),
    ],
    ids=["unknown", "other-client", "revoked", "expired-at-the-instant", "expired",
         "no-refresh-grant", "family-ended", "family-ended-within-grace"],
)
def test_refresh_refuses(
    token: RefreshToken | None, client: Client, now: float, error: type[OAuthError]
) -> None:
    with pytest.raises(error):
        refresh(token, client, now, successor=SUCCESSOR)


def test_rotated_token_of_another_client_is_only_invalid_grant() -> None:
    # Another client cannot make us revoke someone else's family.
    with pytest.raises(InvalidGrantError):
        refresh(dataclasses.replace(ROTATED, client_id="other"), successor=SUCCESSOR)


def test_previous_token_within_grace_with_unused_successor_is_reissued() -> None:
    # The lost response: the client retries with the token it still holds.
    assert refresh(ROTATED, successor=SUCCESSOR, scope=("openid",)) == \
        grant.ReissueWithinGrace(ROTATED, "h2", ("openid",))


@pytest.mark.parametrize(
    ("token", "successor", "now", "grace"),
    [
        (ROTATED, SUCCESSOR, NOW - 10 + GRACE, GRACE),
        (ROTATED, SUCCESSOR, NOW, 0),
        (ROTATED, dataclasses.replace(SUCCESSOR, status=RefreshStatus.ROTATED), NOW, GRACE),
        (ROTATED, dataclasses.replace(SUCCESSOR, status=RefreshStatus.REVOKED), NOW, GRACE),
        (ROTATED, None, NOW, GRACE),
        (ROTATED, dataclasses.replace(SUCCESSOR, token_hash="h9"), NOW, GRACE),
        (dataclasses.replace(ROTATED, rotated_at=None), SUCCESSOR, NOW, GRACE),
        (dataclasses.replace(ROTATED, expires_at=NOW), SUCCESSOR, NOW, GRACE),
    ],
    ids=["window-closed", "grace-zero-is-strict", "successor-used", "successor-revoked",
         "successor-gone", "not-its-successor", "never-rotated-time", "token-expired"],
)
def test_any_other_reuse_revokes_the_family(
    token: RefreshToken, successor: RefreshToken | None, now: float, grace: int
) -> None:
    assert refresh(token, now=now, successor=successor, grace=grace) == \
        grant.RevokeFamily("fam")


@pytest.mark.parametrize(
    ("scope", "granted"),
    [(None, ("openid", "profile")), (("openid",), ("openid",)),
     (("profile", "openid"), ("profile", "openid"))],
    ids=["omitted-is-original", "narrower", "same"],
)
def test_active_token_rotates_with_scope_at_most_the_original(
    scope: tuple[str, ...] | None, granted: tuple[str, ...]
) -> None:
    assert refresh(TOKEN, scope=scope) == grant.Rotate(TOKEN, granted)


@pytest.mark.parametrize(
    "scope", [("offline_access",), ("openid", "profile", "offline_access")],
    ids=["other", "wider"],
)
def test_wider_scope_is_invalid_scope(scope: tuple[str, ...]) -> None:
    with pytest.raises(InvalidScopeError):
        refresh(TOKEN, scope=scope)
    with pytest.raises(InvalidScopeError):  # the grace path narrows the same way
        refresh(ROTATED, successor=SUCCESSOR, scope=scope)


def test_successor_keeps_family_user_auth_time_grant_and_original_scope() -> None:
    decision = grant.Rotate(TOKEN, ("openid",))  # the access token was narrowed
    new = grant.successor(decision, "h2", NOW, 3600)
    assert new == RefreshToken(
        token_hash="h2", family_id="fam", client_id="cli", user_id="u1",
        scope=("openid", "profile"), issued_at=NOW, expires_at=NOW + 3600,
        auth_time=TOKEN.auth_time, family_expires_at=TOKEN.family_expires_at,
        grant_type=DEVICE_CODE_GRANT, status=RefreshStatus.ACTIVE,
    )
    reissued = grant.successor(grant.ReissueWithinGrace(ROTATED, "h2", ("openid",)), "h3",
                               NOW, 3600)
    assert reissued == dataclasses.replace(new, token_hash="h3")


def test_successor_never_outlives_the_family() -> None:
    near_end = dataclasses.replace(TOKEN, family_expires_at=NOW + 100)
    assert grant.successor(grant.Rotate(near_end, TOKEN.scope), "h2", NOW, 3600).expires_at \
        == NOW + 100


def test_a_family_starts_with_its_absolute_end() -> None:
    user = User("u1", "alice", "Alice", "$argon2id$unused")
    login = Grant(user, "cli", ("openid", "offline_access"), NOW - 5, DEVICE_CODE_GRANT)
    policy = TokenPolicy(issuer="https://as.example", refresh_token_lifetime=100,
                         refresh_token_absolute_lifetime=1000)
    first = grant.start_family(login, "h1", "fam", NOW, policy)
    assert first == RefreshToken(
        token_hash="h1", family_id="fam", client_id="cli", user_id="u1",
        scope=("openid", "offline_access"), issued_at=NOW, expires_at=NOW + 100,
        auth_time=NOW - 5, family_expires_at=NOW + 1000, grant_type=DEVICE_CODE_GRANT,
    )
    short = dataclasses.replace(policy, refresh_token_absolute_lifetime=50)
    assert grant.start_family(login, "h1", "fam", NOW, short).expires_at == NOW + 50


ALL_GRANTS = (DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT)


@pytest.mark.parametrize(
    ("client_grants", "scope", "server_grants", "expected"),
    [
        (ALL_GRANTS, ("openid", "offline_access"), ALL_GRANTS, True),
        (ALL_GRANTS, ("openid", "profile"), ALL_GRANTS, False),
        ((DEVICE_CODE_GRANT,), ("openid", "offline_access"), ALL_GRANTS, False),
        (ALL_GRANTS, ("openid", "offline_access"), (DEVICE_CODE_GRANT,), False),
    ],
    ids=["grant-and-offline-access", "no-offline-access", "client-lacks-grant",
         "server-switched-off"],
)
def test_a_refresh_token_is_issued_exactly_for_offline_access_with_the_grant(
    client_grants: tuple[str, ...], scope: tuple[str, ...], server_grants: tuple[str, ...],
    expected: bool,
) -> None:
    client = dataclasses.replace(CLI, grant_types=frozenset(client_grants))
    assert grant.issues_refresh_token(client, scope, server_grants) is expected


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"refresh_token": "r"}, grant.RefreshRequest("r", None)),
        ({"refresh_token": "r", "scope": "openid"}, grant.RefreshRequest("r", ("openid",))),
    ],
    ids=["plain", "with-scope"],
)
def test_parse(form: dict[str, str], expected: grant.RefreshRequest) -> None:
    assert grant.parse(FormParams(form)) == expected


def test_parse_needs_refresh_token() -> None:
    with pytest.raises(InvalidRequestError):
        grant.parse(FormParams({"scope": "openid"}))
