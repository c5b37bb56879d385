"""Discovery (OIDC Discovery §4, then RFC 8414 §3) and the issuer rules."""

from __future__ import annotations

import pytest
from tests.unit.client.flowkit import FakeClock, Script, js

from deviceflow.client.core import ClientOptions, TokenRequest
from deviceflow.client.discovery import discover, discovery_urls, preset_metadata
from deviceflow.client.errors import (
    DiscoveryError,
    InsecureIssuerError,
    IssuerMismatchError,
    NetworkError,
)
from deviceflow.client.flow import (
    HttpResponse,
    TransportFailure,
    check_secure_url,
    run_to_completion,
)
from deviceflow.client.profiles import Profile
from deviceflow.client.providers import ProviderKind

DOC = {
    "issuer": "https://id.example.com/tenant",
    "token_endpoint": "https://id.example.com/tenant/token",
    "device_authorization_endpoint": "https://id.example.com/tenant/device_authorization",
    "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
}


def test_well_known_urls() -> None:
    assert discovery_urls("https://id.example.com/tenant") == (
        "https://id.example.com/tenant/.well-known/openid-configuration",
        "https://id.example.com/.well-known/oauth-authorization-server/tenant",
    )


def test_oidc_document_first() -> None:
    script = Script(FakeClock(), [js(200, DOC)])
    meta = run_to_completion(discover("https://id.example.com/tenant"), script)
    assert meta.device_authorization_endpoint.endswith("/device_authorization")
    assert meta.revocation_endpoint is None
    assert len(script.requests) == 1


def test_falls_back_to_rfc8414() -> None:
    script = Script(FakeClock(), [HttpResponse(404), js(200, DOC)])
    meta = run_to_completion(discover("https://id.example.com/tenant"), script)
    assert meta.issuer == "https://id.example.com/tenant"
    assert "oauth-authorization-server" in script.requests[1].url


def test_refuses_a_document_for_another_issuer() -> None:
    script = Script(FakeClock(), [js(200, dict(DOC, issuer="https://evil.example.com/tenant"))])
    with pytest.raises(IssuerMismatchError, match=r"evil\.example\.com"):
        run_to_completion(discover("https://id.example.com/tenant"), script)


def test_forgives_only_a_trailing_slash() -> None:
    doc = dict(DOC, issuer="https://id.example.com/tenant/")
    meta = run_to_completion(
        discover("https://id.example.com/tenant"), Script(FakeClock(), [js(200, doc)])
    )
    assert meta.issuer == "https://id.example.com/tenant/"


def test_no_device_endpoint_is_a_clear_error_when_the_device_flow_starts() -> None:
    # A server may offer only the browser flow or client credentials: discovery accepts it and
    # the device flow refuses when asked for.
    doc = {k: v for k, v in DOC.items() if k != "device_authorization_endpoint"}
    meta = run_to_completion(
        discover("https://id.example.com/tenant"), Script(FakeClock(), [js(200, doc)])
    )
    assert meta.device_authorization_endpoint == ""
    options = ClientOptions(Profile("p", ProviderKind.OIDC, "cli", "https://id.example.com/tenant"))
    with pytest.raises(DiscoveryError, match="does not offer the device flow"):
        options.acquire_flow(meta, None, TokenRequest())


def test_reads_the_authorization_code_flow_metadata() -> None:
    doc = dict(
        DOC,
        authorization_endpoint="https://id.example.com/tenant/authorize",
        code_challenge_methods_supported=["S256"],
        authorization_response_iss_parameter_supported=True,
    )
    meta = run_to_completion(
        discover("https://id.example.com/tenant"), Script(FakeClock(), [js(200, doc)])
    )
    assert meta.authorization_endpoint == "https://id.example.com/tenant/authorize"
    assert meta.code_challenge_methods_supported == ("S256",)
    assert meta.authorization_response_iss_parameter_supported is True
    # Anything but the JSON literal true means no (RFC 9207 §3).
    doc["authorization_response_iss_parameter_supported"] = "true"
    meta = run_to_completion(
        discover("https://id.example.com/tenant"), Script(FakeClock(), [js(200, doc)])
    )
    assert meta.authorization_response_iss_parameter_supported is False


def test_nothing_found_names_both_urls() -> None:
    script = Script(FakeClock(), [HttpResponse(404), HttpResponse(404)])
    with pytest.raises(DiscoveryError, match=r"openid-configuration.*oauth-authorization-server"):
        run_to_completion(discover("https://id.example.com/tenant"), script)


def test_unreachable_server() -> None:
    script = Script(FakeClock(), [TransportFailure("connection refused")] * 2)
    with pytest.raises(NetworkError):
        run_to_completion(discover("https://id.example.com"), script)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://id.example.com", True),
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("http://[::1]:8000", True),
        ("http://id.example.com", False),
        ("http://10.0.0.1", False),
        ("ftp://id.example.com", False),
        ("https://", False),
    ],
    ids=[
        "https",
        "loopback-v4",
        "localhost",
        "loopback-v6",
        "http-remote",
        "http-private",
        "ftp",
        "no-host",
    ],
)
def test_https_unless_loopback(url: str, ok: bool) -> None:
    if ok:
        assert check_secure_url(url) == url
    else:
        with pytest.raises(InsecureIssuerError):
            check_secure_url(url)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("127.0.0.1:8765", "has no scheme: use http://127.0.0.1:8765 (loopback) or https://"),
        ("[::1]:8000", "has no scheme: use http://[::1]:8000 (loopback)"),
        ("id.example.com/t", "has no scheme: use https://id.example.com/t."),
        ("htp://host", "has an unknown scheme 'htp': use https://host."),
        ("https:/host", "has no host name."),
        ("http://id.example.com", "must use https"),
    ],
    ids=["loopback", "loopback-v6", "remote", "typo", "one-slash", "http-remote"],
)
def test_malformed_urls_are_named_for_what_is_wrong(url: str, said: str) -> None:
    with pytest.raises(InsecureIssuerError) as caught:
        check_secure_url(url, what="issuer")
    assert said in str(caught.value)
    assert caught.value.url == url


def test_insecure_endpoint_in_document_is_refused() -> None:
    doc = dict(DOC, token_endpoint="http://id.example.com/token")
    with pytest.raises(InsecureIssuerError):
        run_to_completion(
            discover("https://id.example.com/tenant"), Script(FakeClock(), [js(200, doc)])
        )


def test_entra_presets_from_the_tenant() -> None:
    meta = preset_metadata(ProviderKind.ENTRA, tenant_id="contoso.onmicrosoft.com")
    assert meta.issuer == "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
    assert meta.device_authorization_endpoint == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode"
    )
    assert meta.token_endpoint.endswith("/oauth2/v2.0/token")


def test_revocation_and_introspection_endpoints_and_their_auth_methods() -> None:
    doc = dict(
        DOC,
        revocation_endpoint="https://id.example.com/tenant/revoke",
        introspection_endpoint="https://id.example.com/tenant/introspect",
        revocation_endpoint_auth_methods_supported=["client_secret_post", 7],
        introspection_endpoint_auth_methods_supported=["client_secret_basic"],
    )
    meta = run_to_completion(
        discover("https://id.example.com/tenant"), Script(FakeClock(), [js(200, doc)])
    )
    assert meta.revocation_endpoint == "https://id.example.com/tenant/revoke"
    assert meta.introspection_endpoint == "https://id.example.com/tenant/introspect"
    assert meta.revocation_endpoint_auth_methods_supported == ("client_secret_post",)
    assert meta.introspection_endpoint_auth_methods_supported == ("client_secret_basic",)


def test_an_insecure_introspection_endpoint_is_refused() -> None:
    doc = dict(DOC, introspection_endpoint="http://id.example.com/introspect")
    with pytest.raises(InsecureIssuerError):
        run_to_completion(
            discover("https://id.example.com/tenant"), Script(FakeClock(), [js(200, doc)])
        )
