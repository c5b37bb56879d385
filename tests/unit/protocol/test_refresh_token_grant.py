"""The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2)."""

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
)
from deviceflow.protocol.params import FormParams

NOW = 1_800_000_000.0
CLI = Client("cli", "CLI", ClientType.PUBLIC, frozenset({DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT}),
             frozenset({"openid", "profile"}))
TOKEN = RefreshToken(
    token_hash="h1", family_id="fam", client_id="cli", user_id="u1",
    scope=("openid", "profile"), issued_at=NOW - 100, expires_at=NOW + 1000,
    auth_time=NOW - 200,
)


def req(scope: tuple[str, ...] | None = None) -> grant.RefreshRequest:
    return grant.RefreshRequest("plain", scope)


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
    ],
    ids=["unknown", "other-client", "revoked", "expired-at-the-instant", "expired",
         "no-refresh-grant"],
)
def test_refresh_refuses(
    token: RefreshToken | None, client: Client, now: float, error: type[OAuthError]
) -> None:
    with pytest.raises(error):
        grant.refresh(req(), token, client, now)


def test_rotated_token_presented_again_revokes_its_family() -> None:
    rotated = dataclasses.replace(TOKEN, status=RefreshStatus.ROTATED)
    assert grant.refresh(req(), rotated, CLI, NOW) == grant.RevokeFamily("fam")


def test_rotated_token_of_another_client_is_only_invalid_grant() -> None:
    # Another client cannot make us revoke someone else's family.
    rotated = dataclasses.replace(TOKEN, status=RefreshStatus.ROTATED, client_id="other")
    with pytest.raises(InvalidGrantError):
        grant.refresh(req(), rotated, CLI, NOW)


@pytest.mark.parametrize(
    ("scope", "granted"),
    [(None, ("openid", "profile")), (("openid",), ("openid",)),
     (("profile", "openid"), ("profile", "openid"))],
    ids=["omitted-is-original", "narrower", "same"],
)
def test_active_token_rotates_with_scope_at_most_the_original(
    scope: tuple[str, ...] | None, granted: tuple[str, ...]
) -> None:
    assert grant.refresh(req(scope), TOKEN, CLI, NOW) == grant.Rotate(TOKEN, granted)


@pytest.mark.parametrize(
    "scope", [("offline_access",), ("openid", "profile", "offline_access")],
    ids=["other", "wider"],
)
def test_wider_scope_is_invalid_scope(scope: tuple[str, ...]) -> None:
    with pytest.raises(InvalidScopeError):
        grant.refresh(req(scope), TOKEN, CLI, NOW)


def test_successor_keeps_family_user_auth_time_and_original_scope() -> None:
    decision = grant.Rotate(TOKEN, ("openid",))  # the access token was narrowed
    new = grant.successor(decision, "h2", NOW, 3600)
    assert new == RefreshToken(
        token_hash="h2", family_id="fam", client_id="cli", user_id="u1",
        scope=("openid", "profile"), issued_at=NOW, expires_at=NOW + 3600,
        auth_time=TOKEN.auth_time, status=RefreshStatus.ACTIVE,
    )


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
