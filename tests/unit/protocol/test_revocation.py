"""Revocation decisions (RFC 7009 §2.1–2.2.1) and introspection responses (RFC 7662 §2.2): pure
functions, no server."""

from __future__ import annotations

import dataclasses

import pytest

from deviceflow.protocol import introspection, revocation
from deviceflow.protocol.errors import InvalidRequestError, UnsupportedTokenTypeError
from deviceflow.protocol.models import (
    DEVICE_CODE_GRANT,
    REFRESH_TOKEN_GRANT,
    Client,
    ClientType,
    DeniedToken,
    DenyKind,
    RefreshStatus,
    RefreshToken,
    TokenPolicy,
    User,
)
from deviceflow.protocol.params import FormParams
from deviceflow.protocol.revocation import TokenKind
from deviceflow.protocol.tokens import (
    FAMILY_CLAIM,
    AccessToken,
    Grant,
    access_token_claims,
    read_access_token,
)

NOW = 1_800_000_000.0
ISSUER = "https://auth.example.com"
GRANTS = frozenset({DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT})
CLI = Client("cli", "CLI", ClientType.PUBLIC, GRANTS, frozenset({"openid"}))
SVC = Client("svc", "SVC", ClientType.CONFIDENTIAL, GRANTS, frozenset({"openid"}), "hash")
USER = User("u1", "ada", "Ada", "$argon2id$unused")
ACCESS = AccessToken(jti="j1", client_id="cli", sub="u1", iss=ISSUER, iat=int(NOW) - 10,
                     exp=int(NOW) + 3590, scope=("openid",), aud=ISSUER, gty=DEVICE_CODE_GRANT,
                     family_id="fam")
REFRESH = RefreshToken(
    token_hash="h1", family_id="fam", client_id="cli", user_id="u1", scope=("openid",),
    issued_at=NOW - 100, expires_at=NOW + 1000, auth_time=NOW - 200,
    family_expires_at=NOW + 5000, grant_type=DEVICE_CODE_GRANT,
)


# --- the request (§2.1) ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("form", "hint"),
    [({"token": "t"}, None), ({"token": "t", "token_type_hint": "refresh_token"},
                              TokenKind.REFRESH_TOKEN),
     ({"token": "t", "token_type_hint": "access_token"}, TokenKind.ACCESS_TOKEN),
     ({"token": "t", "token_type_hint": "id_token"}, None)],
    ids=["no-hint", "refresh", "access", "unknown-hint-ignored"],
)
def test_parse_reads_token_and_hint(form: dict[str, str], hint: TokenKind | None) -> None:
    assert revocation.parse_token_request(FormParams(form)) == revocation.TokenRequest("t", hint)


@pytest.mark.parametrize("form", [{}, {"token": ""}, {"token": "  "}, {"token_type_hint": "x"}],
                         ids=["empty-form", "empty", "blank", "hint-only"])
def test_a_missing_token_is_invalid_request(form: dict[str, str]) -> None:
    with pytest.raises(InvalidRequestError):
        revocation.parse_token_request(FormParams(form))


def test_the_hint_orders_the_lookups_and_never_skips_one() -> None:
    assert revocation.lookup_order(TokenKind.REFRESH_TOKEN) == (
        TokenKind.REFRESH_TOKEN, TokenKind.ACCESS_TOKEN)
    assert revocation.lookup_order(TokenKind.ACCESS_TOKEN) == (
        TokenKind.ACCESS_TOKEN, TokenKind.REFRESH_TOKEN)
    assert set(revocation.lookup_order(None)) == set(TokenKind)


# --- decisions -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "token",
    [REFRESH, dataclasses.replace(REFRESH, status=RefreshStatus.ROTATED),
     dataclasses.replace(REFRESH, status=RefreshStatus.REVOKED),
     dataclasses.replace(REFRESH, expires_at=NOW - 1)],
    ids=["active", "rotated", "revoked", "expired"],
)
def test_a_refresh_token_of_the_client_ends_its_login(token: RefreshToken) -> None:
    assert revocation.revoke_refresh_token(token, CLI) == revocation.EndLogin("fam")


def test_another_clients_refresh_token_is_left_alone() -> None:
    other = dataclasses.replace(CLI, client_id="tv2")
    assert isinstance(revocation.revoke_refresh_token(REFRESH, other),
                      revocation.NothingToRevoke)


def test_a_public_clients_access_token_is_denied_and_ends_its_login() -> None:
    decision = revocation.revoke_access_token(ACCESS, CLI, NOW)
    assert decision == revocation.DenyAccessToken(
        DeniedToken(DenyKind.JTI, "j1", expires_at=float(ACCESS.exp), created_at=NOW), "fam")


def test_a_confidential_clients_access_token_is_denied_alone() -> None:
    token = dataclasses.replace(ACCESS, client_id="svc")
    decision = revocation.revoke_access_token(token, SVC, NOW)
    assert isinstance(decision, revocation.DenyAccessToken)
    assert decision.family_id is None
    assert decision.entry is not None
    assert decision.entry.value == "j1"


def test_an_expired_access_token_needs_no_entry() -> None:
    expired = dataclasses.replace(ACCESS, exp=int(NOW))
    assert revocation.revoke_access_token(expired, CLI, NOW) == revocation.DenyAccessToken(
        None, "fam")
    confidential = dataclasses.replace(expired, client_id="svc")
    assert isinstance(revocation.revoke_access_token(confidential, SVC, NOW),
                      revocation.NothingToRevoke)


def test_another_clients_access_token_is_left_alone() -> None:
    assert isinstance(revocation.revoke_access_token(ACCESS, SVC, NOW),
                      revocation.NothingToRevoke)


def test_only_the_clients_own_id_token_is_unsupported_token_type() -> None:
    claims: dict[str, object] = {"iss": ISSUER, "aud": "cli", "sub": "u1"}
    with pytest.raises(UnsupportedTokenTypeError):
        revocation.refuse_id_token(claims, CLI, ISSUER)
    revocation.refuse_id_token(claims, SVC, ISSUER)  # another client's: answered as unknown
    revocation.refuse_id_token({**claims, "iss": "https://evil"}, CLI, ISSUER)


def test_a_family_entry_outlives_every_access_token_already_issued() -> None:
    entry = revocation.family_entry("fam", NOW, 3600)
    assert entry.kind is DenyKind.FAMILY
    assert entry.expires_at == NOW + 3600 + revocation.CLOCK_MARGIN


# --- the fam claim -------------------------------------------------------------------------------

def test_access_tokens_carry_the_login_and_read_back() -> None:
    grant = Grant(USER, "cli", ("openid",), NOW - 30, DEVICE_CODE_GRANT, "fam")
    claims = access_token_claims(grant, TokenPolicy(ISSUER), int(NOW), "j1")
    assert claims[FAMILY_CLAIM] == "fam"
    token = read_access_token(claims, ISSUER)
    assert token is not None
    assert token.family_id == "fam"
    assert token.jti == "j1"
    assert read_access_token(claims, "https://other") is None
    assert read_access_token({k: v for k, v in claims.items() if k != "jti"}, ISSUER) is None


# --- introspection (RFC 7662 §2.2) ----------------------------------------------------------------

def test_inactive_says_nothing_else() -> None:
    assert introspection.inactive() == {"active": False}


def test_an_active_access_token_is_described() -> None:
    body = introspection.access_token_response(ACCESS, USER)
    assert body == {
        "active": True, "scope": "openid", "client_id": "cli", "username": "ada",
        "token_type": "Bearer", "exp": ACCESS.exp, "iat": ACCESS.iat, "sub": "u1",
        "iss": ISSUER, "jti": "j1", "aud": ISSUER, "gty": DEVICE_CODE_GRANT,
    }
    assert FAMILY_CLAIM not in body


@pytest.mark.parametrize(
    ("changes", "active"),
    [({}, True), ({"status": RefreshStatus.ROTATED}, False),
     ({"status": RefreshStatus.REVOKED}, False), ({"expires_at": NOW}, False),
     ({"family_expires_at": NOW}, False)],
    ids=["active", "rotated", "revoked", "expired", "family-over"],
)
def test_a_refresh_token_is_active_only_while_usable(changes: dict[str, object],
                                                     active: bool) -> None:
    token = dataclasses.replace(REFRESH, **changes)  # type: ignore[arg-type]
    assert introspection.refresh_token_active(token, NOW) is active


def test_a_refresh_token_has_no_token_type() -> None:
    body = introspection.refresh_token_response(REFRESH, USER, ISSUER)
    assert "token_type" not in body
    assert body["active"] is True
    assert body["exp"] == int(REFRESH.expires_at)
    assert body["gty"] == DEVICE_CODE_GRANT
    assert body["sub"] == "u1"
