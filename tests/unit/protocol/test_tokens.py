"""Access tokens (RFC 9068) and ID tokens (OIDC Core §2), signed through an injected Signer."""

from __future__ import annotations

import pytest

from deviceflow.protocol.models import DEVICE_CODE_GRANT, IssuedTokens, TokenPolicy, User
from deviceflow.protocol.tokens import (
    ACCESS_TOKEN_TYP,
    Grant,
    access_token_claims,
    id_token_claims,
    issue,
    profile_claims,
)

NOW = 1_800_000_000
ISSUER = "https://auth.example.com"
POLICY = TokenPolicy(issuer=ISSUER, access_token_lifetime=900, id_token_lifetime=300)
ALICE = User("sub-alice", "alice", "Alice Liddell", "$argon2id$...")


class RecordingSigner:
    alg = "RS256"

    def __init__(self) -> None:
        self.signed: list[tuple[dict[str, object], str]] = []

    def sign(self, claims: dict[str, object], typ: str) -> str:
        self.signed.append((claims, typ))
        return f"jws-{len(self.signed)}"


def grant(*scope: str, user: User = ALICE) -> Grant:
    return Grant(user, "tv", scope, auth_time=NOW - 30.7, grant_type=DEVICE_CODE_GRANT)


def test_access_token_claims_are_the_rfc_9068_set() -> None:
    claims = access_token_claims(grant("openid", "profile"), POLICY, NOW, "jti-1")
    assert claims == {
        "iss": ISSUER, "sub": "sub-alice", "aud": ISSUER, "client_id": "tv",
        "scope": "openid profile", "iat": NOW, "exp": NOW + 900, "auth_time": NOW - 31,
        "jti": "jti-1", "gty": DEVICE_CODE_GRANT, "amr": ["pwd"],
    }


def test_both_tokens_say_which_factors_were_used() -> None:
    """RFC 8176 ``amr``: a password and an authenticator-app code are ``pwd otp mfa``."""
    two = Grant(ALICE, "tv", ("openid",), auth_time=NOW, grant_type=DEVICE_CODE_GRANT,
                amr=("pwd", "otp", "mfa"))
    assert access_token_claims(two, POLICY, NOW, "j")["amr"] == ["pwd", "otp", "mfa"]
    assert id_token_claims(two, POLICY, NOW)["amr"] == ["pwd", "otp", "mfa"]


def test_access_token_audience_is_configurable() -> None:
    policy = TokenPolicy(issuer=ISSUER, access_token_audience="https://api.example.com")
    assert access_token_claims(grant(), policy, NOW, "j")["aud"] == "https://api.example.com"


@pytest.mark.parametrize(
    ("scope", "profile"),
    [(("openid",), False), (("openid", "profile"), True)],
    ids=["openid", "openid-profile"],
)
def test_id_token_claims(scope: tuple[str, ...], profile: bool) -> None:
    claims = id_token_claims(grant(*scope), POLICY, NOW)
    required = {"iss": ISSUER, "sub": "sub-alice", "aud": "tv", "iat": NOW, "exp": NOW + 300,
                "auth_time": NOW - 31, "amr": ["pwd"]}
    extra = {"preferred_username": "alice", "name": "Alice Liddell"} if profile else {}
    assert claims == {**required, **extra}


@pytest.mark.parametrize(
    ("user", "expected"),
    [(ALICE, {"preferred_username": "alice", "name": "Alice Liddell"}),
     (User("s", "bob", "", "h"), {"preferred_username": "bob", "name": "bob"})],
    ids=["named", "name-falls-back-to-username"],
)
def test_profile_claims(user: User, expected: dict[str, str]) -> None:
    assert profile_claims(user) == expected


@pytest.mark.parametrize(
    ("scope", "refresh", "keys"),
    [
        (("profile",), None, {"access_token", "token_type", "expires_in", "scope"}),
        (("openid",), None, {"access_token", "token_type", "expires_in", "scope", "id_token"}),
        (("profile",), "r1", {"access_token", "token_type", "expires_in", "scope",
                              "refresh_token"}),
        (("openid", "profile"), "r1", {"access_token", "token_type", "expires_in", "scope",
                                       "refresh_token", "id_token"}),
    ],
    ids=["access-only", "with-id-token", "with-refresh", "everything"],
)
def test_issue_sends_what_was_earned(
    scope: tuple[str, ...], refresh: str | None, keys: set[str]
) -> None:
    signer = RecordingSigner()
    issued = issue(grant(*scope), POLICY, signer, NOW + 0.9, "jti-1", refresh)
    body = issued.body()
    assert set(body) == keys
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert isinstance(body["expires_in"], int)
    assert body["scope"] == " ".join(scope)
    assert body["access_token"] == "jws-1"
    assert body.get("refresh_token") == refresh
    # The access token is typed at+jwt (RFC 9068 §2.1); the ID token a plain JWT.
    assert signer.signed[0][1] == ACCESS_TOKEN_TYP == "at+jwt"
    assert signer.signed[0][0]["iat"] == NOW
    if "openid" in scope:
        assert body["id_token"] == "jws-2"
        assert signer.signed[1][1] == "JWT"
        assert signer.signed[1][0]["aud"] == "tv"
    else:
        assert len(signer.signed) == 1


def test_issued_tokens_body_omits_absent_parts() -> None:
    issued = IssuedTokens(access_token="a", expires_in=60, scope=("x", "y"))
    assert issued.body() == {"access_token": "a", "token_type": "Bearer", "expires_in": 60,
                             "scope": "x y"}
