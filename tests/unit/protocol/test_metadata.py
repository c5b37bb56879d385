"""Authorization server metadata (RFC 8414 §2–3, OIDC Discovery §3)."""

from __future__ import annotations

import json

import pytest

from deviceflow.protocol.metadata import Endpoints, Features, server_metadata
from deviceflow.protocol.models import DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT

FEATURES = Features(grant_types=(DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT),
                    scopes=("openid", "profile", "offline_access"), signing_algs=("RS256",))

REQUIRED = {
    "issuer", "device_authorization_endpoint", "token_endpoint", "jwks_uri",
    "grant_types_supported", "scopes_supported", "response_types_supported",
    "token_endpoint_auth_methods_supported", "id_token_signing_alg_values_supported",
    "subject_types_supported",
}


@pytest.mark.parametrize(
    ("issuer", "base"),
    [
        ("https://auth.example.com", "https://auth.example.com"),
        ("https://auth.example.com/", "https://auth.example.com"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://example.com/tenant-a", "https://example.com/tenant-a"),
    ],
    ids=["bare", "trailing-slash", "loopback-port", "path"],
)
def test_issuer_is_byte_for_byte_and_endpoints_hang_off_it(issuer: str, base: str) -> None:
    meta = server_metadata(issuer, Endpoints(), FEATURES)
    assert meta["issuer"] == issuer
    assert meta["device_authorization_endpoint"] == base + "/device_authorization"
    assert meta["token_endpoint"] == base + "/token"
    assert meta["jwks_uri"] == base + "/jwks.json"
    assert meta["userinfo_endpoint"] == base + "/userinfo"


def test_required_fields_and_values() -> None:
    meta = server_metadata("https://a.example", Endpoints(), FEATURES)
    assert set(meta) >= REQUIRED
    assert meta["grant_types_supported"] == [DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT]
    assert meta["scopes_supported"] == ["openid", "profile", "offline_access"]
    assert meta["response_types_supported"] == []
    assert meta["token_endpoint_auth_methods_supported"] == [
        "none", "client_secret_basic", "client_secret_post"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert meta["subject_types_supported"] == ["public"]
    json.dumps(meta)  # serializable as it stands


@pytest.mark.parametrize(("userinfo", "advertised"), [(True, True), (False, False)],
                         ids=["on", "off"])
def test_userinfo_is_advertised_only_when_enabled(userinfo: bool, advertised: bool) -> None:
    features = Features(FEATURES.grant_types, FEATURES.scopes, ("RS256",), userinfo=userinfo)
    assert ("userinfo_endpoint" in server_metadata("https://a.example", Endpoints(), features)) \
        is advertised


@pytest.mark.parametrize(
    ("grants", "algs"),
    [((DEVICE_CODE_GRANT,), ("ES256",)), ((DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT),
                                          ("RS256", "ES256"))],
    ids=["device-only-es256", "both-two-algs"],
)
def test_advertises_exactly_the_features_given(
    grants: tuple[str, ...], algs: tuple[str, ...]
) -> None:
    meta = server_metadata("https://a.example", Endpoints(),
                           Features(grants, ("openid",), algs))
    assert meta["grant_types_supported"] == list(grants)
    assert meta["id_token_signing_alg_values_supported"] == list(algs)


def test_endpoint_paths_are_configurable() -> None:
    meta = server_metadata("https://a.example", Endpoints(token="/oauth/token"), FEATURES)
    assert meta["token_endpoint"] == "https://a.example/oauth/token"


def test_the_authorization_endpoint_is_advertised_exactly_when_its_grant_is() -> None:
    with_code = Features(("authorization_code", *FEATURES.grant_types), FEATURES.scopes,
                         ("RS256",))
    meta = server_metadata("https://a.example/tenant", Endpoints(), with_code)
    assert meta["authorization_endpoint"] == "https://a.example/tenant/authorize"
    assert meta["response_types_supported"] == ["code"]
    assert meta["response_modes_supported"] == ["query"]
    assert meta["code_challenge_methods_supported"] == ["S256"]  # RFC 7636 §4.3; no "plain"
    assert meta["authorization_response_iss_parameter_supported"] is True  # RFC 9207 §3
    without = server_metadata("https://a.example", Endpoints(), FEATURES)
    for key in ("authorization_endpoint", "code_challenge_methods_supported",
                "authorization_response_iss_parameter_supported"):
        assert key not in without
