"""The device authorization endpoint's decisions (RFC 8628 §3.1–§3.2)."""

from __future__ import annotations

import pytest

from deviceflow.protocol.codes import CodeHasher
from deviceflow.protocol.device_authorization import (
    DeviceAuthorizationRequest,
    DeviceAuthorizationResponse,
    authorize_device,
    parse_request,
)
from deviceflow.protocol.errors import InvalidScopeError, UnauthorizedClientError
from deviceflow.protocol.models import (
    DEVICE_CODE_GRANT,
    REFRESH_TOKEN_GRANT,
    Client,
    ClientType,
    DeviceAuthorization,
    DevicePolicy,
    DeviceStatus,
    RequestOrigin,
)
from deviceflow.protocol.params import FormParams

NOW = 1_800_000_000.0
HASHER = CodeHasher(b"k" * 32)
POLICY = DevicePolicy(verification_uri="https://auth.example.com/device")
ORIGIN = RequestOrigin("203.0.113.5", "curl/8")
DEVICE_CODE = "d" * 43


class FixedCodes:
    def device_code(self) -> str:
        return DEVICE_CODE

    def user_code(self) -> str:
        return "WDJBMJHT"

    def token(self) -> str:
        return "t" * 43


def client(
    grants: frozenset[str] = frozenset({DEVICE_CODE_GRANT}), lifetime: int | None = None
) -> Client:
    return Client("tv", "TV", ClientType.PUBLIC, grants, frozenset({"openid", "profile"}),
                  device_code_lifetime=lifetime)


def run(
    scope: tuple[str, ...] | None = None, c: Client | None = None,
    policy: DevicePolicy = POLICY,
) -> tuple[DeviceAuthorization, DeviceAuthorizationResponse]:
    return authorize_device(DeviceAuthorizationRequest(scope), c or client(), policy, ORIGIN,
                            NOW, FixedCodes(), HASHER)


def test_response_carries_every_rfc_field() -> None:
    _, response = run()
    assert response.body() == {
        "device_code": DEVICE_CODE,
        "user_code": "WDJB-MJHT",
        "verification_uri": "https://auth.example.com/device",
        "verification_uri_complete": "https://auth.example.com/device?user_code=WDJB-MJHT",
        "expires_in": 600,
        "interval": 5,
    }
    body = response.body()
    assert isinstance(body["expires_in"], int)
    assert isinstance(body["interval"], int)


def test_record_keeps_only_hashes_and_the_request_facts() -> None:
    record, response = run(("openid",))
    assert record.device_code_hash == HASHER.device_code(DEVICE_CODE)
    assert record.user_code_hash == HASHER.user_code("WDJBMJHT")
    assert DEVICE_CODE not in repr(record)
    assert "WDJBMJHT" not in repr(record)
    assert record.client_id == "tv"
    assert record.scope == ("openid",)
    assert record.status is DeviceStatus.PENDING
    assert record.created_at == NOW
    assert record.expires_at == NOW + response.expires_in
    assert record.interval == response.interval
    assert record.origin == ORIGIN
    assert record.last_polled_at is None
    assert record.user_id is None


@pytest.mark.parametrize(
    ("policy", "lifetime", "expires_in", "interval"),
    [
        (POLICY, None, 600, 5),
        (DevicePolicy(POLICY.verification_uri, expires_in=900, interval=7), None, 900, 7),
        (POLICY, 120, 120, 5),
        (DevicePolicy(POLICY.verification_uri, expires_in=900, interval=7), 1800, 1800, 7),
    ],
    ids=["defaults", "server-setting", "per-client", "per-client-beats-server"],
)
def test_lifetime_and_interval(
    policy: DevicePolicy, lifetime: int | None, expires_in: int, interval: int
) -> None:
    record, response = run(c=client(lifetime=lifetime), policy=policy)
    assert (response.expires_in, response.interval) == (expires_in, interval)
    assert record.expires_at == NOW + expires_in


@pytest.mark.parametrize(
    ("requested", "granted"),
    [(None, ("openid", "profile")), (("profile",), ("profile",))],
    ids=["default-all-allowed", "asked"],
)
def test_scope(requested: tuple[str, ...] | None, granted: tuple[str, ...]) -> None:
    record, _ = run(requested)
    assert record.scope == granted


def test_scope_the_client_may_not_ask_is_invalid_scope() -> None:
    with pytest.raises(InvalidScopeError):
        run(("openid", "admin"))


@pytest.mark.parametrize(
    "grants", [frozenset(), frozenset({REFRESH_TOKEN_GRANT})], ids=["none", "refresh-only"]
)
def test_client_without_the_device_grant_is_unauthorized(grants: frozenset[str]) -> None:
    with pytest.raises(UnauthorizedClientError):
        run(c=client(grants))


def test_parse_request_reads_scope_and_ignores_unknown_parameters() -> None:
    params = FormParams({"client_id": "tv", "scope": "openid profile", "audience": "x"})
    assert parse_request(params) == DeviceAuthorizationRequest(("openid", "profile"))
    assert parse_request(FormParams({})) == DeviceAuthorizationRequest(None)
