"""Logout's RFC 7009 revocation and status's RFC 7662 introspection, as sans-I/O flows."""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl

import pytest
from tests.unit.client.flowkit import FakeClock, Script, js

from deviceflow.client.cache import CachedToken, CacheRecord
from deviceflow.client.core import ClientOptions
from deviceflow.client.errors import ServerResponseError
from deviceflow.client.flow import (
    ClientAuth,
    HttpRequest,
    HttpResponse,
    ServerMetadata,
    TransportFailure,
    run_to_completion,
)
from deviceflow.client.profiles import Profile
from deviceflow.client.providers import ProviderKind
from deviceflow.client.session import (
    ActivitySource,
    RevocationStatus,
    introspect,
    revocation_flow,
    status_flow,
)
from deviceflow.client.tokens import TokenSet

ISSUER = "https://id.example.com"
REVOKE = f"{ISSUER}/revoke"
INTROSPECT = f"{ISSUER}/introspect"
RT, AT1, AT2 = "rt-secret-refresh", "at-secret-one", "at-secret-two"


def metadata(**extra: object) -> ServerMetadata:
    fields: dict[str, object] = {
        "issuer": ISSUER,
        "token_endpoint": f"{ISSUER}/token",
        "device_authorization_endpoint": f"{ISSUER}/device_authorization",
        "revocation_endpoint": REVOKE,
        "introspection_endpoint": INTROSPECT,
    }
    fields.update(extra)
    return ServerMetadata(**fields)  # type: ignore[arg-type]


def options(
    clock: FakeClock,
    *,
    provider: ProviderKind = ProviderKind.OIDC,
    secret: str | None = None,
    meta: ServerMetadata | None = None,
) -> ClientOptions:
    profile = Profile(name="p", provider=provider, client_id="cli", issuer=ISSUER)
    return ClientOptions(
        profile=profile, client_secret=secret, clock=clock, metadata=meta or metadata()
    )


def record(clock: FakeClock, *, expired_second: bool = False) -> CacheRecord:
    now = clock.time()
    profile = Profile(name="p", provider=ProviderKind.OIDC, client_id="cli", issuer=ISSUER)
    return CacheRecord(
        profile.cache_key,
        refresh_token=RT,
        tokens=(
            CachedToken(("openid",), "", TokenSet(AT1, expires_at=now + 3600)),
            CachedToken(
                ("api",), "", TokenSet(AT2, expires_at=now - 5 if expired_second else now + 60)
            ),
        ),
    )


def form(request: HttpRequest) -> dict[str, str]:
    return dict(request.form or ())


def test_logout_revokes_the_refresh_token_first_then_each_access_token() -> None:
    clock = FakeClock()
    script = Script(clock, replies=[HttpResponse(200), HttpResponse(200), HttpResponse(200)])
    result = run_to_completion(revocation_flow(options(clock), record(clock)), script)
    sent = [(form(r)["token"], form(r)["token_type_hint"]) for r in script.requests]
    assert sent == [(RT, "refresh_token"), (AT1, "access_token"), (AT2, "access_token")]
    assert all(r.url == REVOKE and r.method == "POST" for r in script.requests)
    assert [r.status for r in result.revocations] == [RevocationStatus.REVOKED] * 3
    assert result.revoked
    assert not result.failed
    assert result.revocations[1].kind == "access token (openid)"


def test_a_failed_revocation_is_reported_and_the_others_are_still_tried() -> None:
    clock = FakeClock()
    # The refresh token's two attempts meet 503, the access tokens' requests succeed.
    script = Script(
        clock,
        replies=[HttpResponse(503), HttpResponse(503), HttpResponse(200), HttpResponse(200)],
    )
    result = run_to_completion(revocation_flow(options(clock), record(clock)), script)
    statuses = [r.status for r in result.revocations]
    assert statuses == [RevocationStatus.FAILED, RevocationStatus.REVOKED, RevocationStatus.REVOKED]
    assert "HTTP 503" in (result.revocation_error or "")
    assert not result.revoked


def test_unreachable_server_fails_every_token_without_naming_it() -> None:
    clock = FakeClock()
    script = Script(clock, handler=lambda _r: TransportFailure("connection refused"))
    result = run_to_completion(revocation_flow(options(clock), record(clock)), script)
    assert {r.status for r in result.revocations} == {RevocationStatus.FAILED}
    for revocation in result.revocations:
        assert "connection refused" in (revocation.detail or "")


def test_a_server_quoting_the_token_in_its_error_does_not_leak_it() -> None:
    clock = FakeClock()
    script = Script(
        clock,
        handler=lambda r: js(
            400, {"error": "invalid_request", "error_description": form(r)["token"]}
        ),
    )
    result = run_to_completion(revocation_flow(options(clock), record(clock)), script)
    details = " ".join(r.detail or "" for r in result.revocations)
    assert "***" in details
    for token in (RT, AT1, AT2):
        assert token not in details


def test_no_revocation_endpoint_sends_nothing() -> None:
    clock = FakeClock()
    script = Script(clock)
    opts = options(clock, meta=metadata(revocation_endpoint=None))
    result = run_to_completion(revocation_flow(opts, record(clock)), script)
    assert script.requests == []
    assert {r.status for r in result.revocations} == {RevocationStatus.NOT_OFFERED}
    assert not result.revoked
    assert not result.failed
    assert not result.revocation_supported


def test_an_expired_access_token_is_not_sent() -> None:
    clock = FakeClock()
    script = Script(clock, replies=[HttpResponse(200), HttpResponse(200)])
    result = run_to_completion(
        revocation_flow(options(clock), record(clock, expired_second=True)), script
    )
    assert [form(r)["token"] for r in script.requests] == [RT, AT1]
    assert result.revocations[2].status is RevocationStatus.EXPIRED


def test_unsupported_token_type_means_not_revocable_not_failed() -> None:
    clock = FakeClock()

    def answer(request: HttpRequest) -> HttpResponse:
        if form(request)["token_type_hint"] == "access_token":
            return js(400, {"error": "unsupported_token_type"})  # RFC 7009 §2.2.1
        return HttpResponse(200)

    result = run_to_completion(
        revocation_flow(options(clock), record(clock)), Script(clock, handler=answer)
    )
    assert [r.status for r in result.revocations] == [
        RevocationStatus.REVOKED,
        RevocationStatus.NOT_REVOCABLE,
        RevocationStatus.NOT_REVOCABLE,
    ]
    assert result.revoked
    assert not result.failed


def test_auth0_revokes_only_the_refresh_token() -> None:
    clock = FakeClock()
    script = Script(clock, replies=[HttpResponse(200)])
    opts = options(clock, provider=ProviderKind.AUTH0)
    result = run_to_completion(revocation_flow(opts, record(clock)), script)
    assert [form(r)["token_type_hint"] for r in script.requests] == ["refresh_token"]
    assert [r.status for r in result.revocations][1:] == [RevocationStatus.NOT_REVOCABLE] * 2


@pytest.mark.parametrize(
    ("provider", "expected"),
    [(ProviderKind.GOOGLE, RevocationStatus.REVOKED), (ProviderKind.OIDC, RevocationStatus.FAILED)],
    ids=["google-quirk", "rfc-server"],
)
def test_google_invalid_token_after_the_grant_ended_counts_as_revoked(
    provider: ProviderKind, expected: RevocationStatus
) -> None:
    clock = FakeClock()
    gone = js(400, {"error": "invalid_token", "error_description": "Token expired or revoked"})
    script = Script(clock, replies=[HttpResponse(200), gone, gone])
    profile = Profile(name="p", provider=provider, client_id="cli", issuer=ISSUER)
    opts = ClientOptions(profile=profile, clock=clock, metadata=metadata())
    result = run_to_completion(revocation_flow(opts, record(clock)), script)
    assert [r.status for r in result.revocations][1:] == [expected, expected]


def test_the_revocation_endpoints_own_auth_methods_are_used() -> None:
    clock = FakeClock()
    script = Script(clock, replies=[HttpResponse(200)] * 3)
    meta = metadata(
        token_endpoint_auth_methods_supported=("client_secret_basic",),
        revocation_endpoint_auth_methods_supported=("client_secret_post",),
    )
    opts = options(clock, secret="s3cret", meta=meta)
    run_to_completion(revocation_flow(opts, record(clock)), script)
    first = script.requests[0]
    assert form(first)["client_secret"] == "s3cret"
    assert first.redacted_form().count("***") == 2  # the token and the secret


# --- RFC 7662 --------------------------------------------------------------------------------


def test_introspect_reads_active_and_exp_with_client_authentication() -> None:
    clock = FakeClock()
    script = Script(clock, replies=[js(200, {"active": True, "exp": 1_700_004_000, "sub": "a"})])
    auth = ClientAuth("cli", "s3cret")
    found = run_to_completion(introspect(INTROSPECT, auth, AT1, "access_token"), script)
    assert found.active
    assert found.expires_at == 1_700_004_000
    request = script.requests[0]
    assert dict(request.headers)["Authorization"] == "Basic " + base64.b64encode(
        b"cli:s3cret"
    ).decode()
    assert dict(parse_qsl(request.redacted_form())) == {
        "client_id": "cli", "token": "***", "token_type_hint": "access_token"
    }


@pytest.mark.parametrize(
    "body", [{"active": "true"}, {"exp": 5}, ["active"]], ids=["string", "missing", "not-object"]
)
def test_introspection_without_a_boolean_active_is_refused(body: object) -> None:
    clock = FakeClock()
    with pytest.raises(ServerResponseError):
        run_to_completion(
            introspect(INTROSPECT, ClientAuth("cli", "s"), AT1, "access_token"),
            Script(clock, replies=[js(200, body)]),
        )


def test_status_of_a_confidential_client_comes_from_introspection() -> None:
    clock = FakeClock()

    def answer(request: HttpRequest) -> HttpResponse:
        # The access token was revoked at the server; the refresh token lives on.
        return js(200, {"active": form(request)["token"] == RT})

    script = Script(clock, handler=answer)
    found = run_to_completion(
        status_flow(options(clock, secret="s3cret"), record(clock)), script
    )
    assert [form(r)["token_type_hint"] for r in script.requests] == [
        "refresh_token", "access_token"
    ]
    assert found.refresh_token is not None
    assert found.access_token is not None
    assert found.refresh_token.source is ActivitySource.INTROSPECTION
    assert found.refresh_token.active is True
    assert found.access_token.source is ActivitySource.INTROSPECTION
    assert found.access_token.active is False  # though its local expiry is an hour away
    assert found.access_token.expires_at is None


@pytest.mark.parametrize(
    ("secret", "meta", "ask", "note"),
    [
        (None, metadata(), True, "public client"),
        ("s", metadata(introspection_endpoint=None), True, "no introspection endpoint"),
        ("s", metadata(), False, "--offline"),
    ],
    ids=["public-client", "no-endpoint", "offline"],
)
def test_status_falls_back_to_the_local_expiry_without_a_request(
    secret: str | None, meta: ServerMetadata, ask: bool, note: str
) -> None:
    clock = FakeClock()
    script = Script(clock)
    found = run_to_completion(
        status_flow(options(clock, secret=secret, meta=meta), record(clock), ask_server=ask),
        script,
    )
    assert script.requests == []
    assert found.access_token is not None
    assert found.refresh_token is not None
    assert found.access_token.source is ActivitySource.LOCAL
    assert found.access_token.active is True
    assert found.access_token.expires_at == clock.time() + 3600  # the longest-lived token
    assert found.refresh_token.active is None  # a refresh token's life is not known locally
    assert note in (found.access_token.note or "")


def test_status_falls_back_when_introspection_fails() -> None:
    clock = FakeClock()
    script = Script(clock, handler=lambda _r: HttpResponse(503))
    found = run_to_completion(
        status_flow(options(clock, secret="s3cret"), record(clock)), script
    )
    assert found.access_token is not None
    assert found.access_token.source is ActivitySource.LOCAL
    assert "introspection failed" in (found.access_token.note or "")
    assert "HTTP 503" in (found.access_token.note or "")
