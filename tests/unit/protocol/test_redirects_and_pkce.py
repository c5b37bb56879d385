"""Redirect URIs (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §4.1.3) and PKCE S256 (RFC 7636)."""

from __future__ import annotations

import pytest

from deviceflow.protocol import pkce
from deviceflow.protocol.grants import authorization_code
from deviceflow.protocol.redirects import RedirectUriRefused, check_redirect_uri, matches


def test_rfc7636_appendix_b_vector() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce.s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce.verify(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert not pkce.verify(verifier[:-1] + "l", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")


@pytest.mark.parametrize("verifier", ["short", "x" * 129, "has space" + "x" * 40, "é" * 43])
def test_a_verifier_outside_rfc7636_4_1_never_matches(verifier: str) -> None:
    assert not pkce.verify(verifier, pkce.s256("x" * 43))


@pytest.mark.parametrize("uri", [
    "https://app.example/cb", "https://app.example/cb?x=1", "http://127.0.0.1/cb",
    "http://127.0.0.1:8080/cb", "http://[::1]/cb", "com.example.app:/oauth2redirect",
])
def test_registrable(uri: str) -> None:
    assert check_redirect_uri(uri) == uri


@pytest.mark.parametrize("uri", [
    "", "https://app.example/cb#frag", "http://app.example/cb", "http://localhost/cb",
    "myapp:/cb", "com.example.app://host/cb", "https:///cb", "http://u@127.0.0.1/cb",
    "https://app.example/a b", "http://127.0.0.1:99999/cb",
])
def test_refused(uri: str) -> None:
    with pytest.raises(RedirectUriRefused):
        check_redirect_uri(uri)


REGISTERED = frozenset({"http://127.0.0.1/cb", "https://app.example/cb", "http://[::1]:7/x"})


@pytest.mark.parametrize(("requested", "ok"), [
    ("https://app.example/cb", True),
    ("https://app.example/cb/", False),  # exact match (RFC 9700 §4.1.3)
    ("https://app.example:8443/cb", False),  # only loopback ports vary
    ("HTTPS://app.example/cb", False),
    ("http://127.0.0.1/cb", True),
    ("http://127.0.0.1:51000/cb", True),  # RFC 8252 §7.3: any port
    ("http://127.0.0.1:51000/cb?x=1", False),
    ("http://127.0.0.1:51000/other", False),
    ("http://[::1]:4000/x", True),
    ("http://localhost:51000/cb", False),
    ("http://u@127.0.0.1:51000/cb", False),
    ("http://127.0.0.1:bad/cb", False),
])
def test_matching(requested: str, ok: bool) -> None:
    assert matches(requested, REGISTERED) is ok


def test_the_response_keeps_the_redirect_uris_query_and_adds_iss() -> None:
    uri = authorization_code.error_uri("https://app.example/cb?from=x", "s t", "access_denied",
                                       "No.", "https://auth.example.com/tenant")
    assert uri == ("https://app.example/cb?from=x&error=access_denied&error_description=No."
                   "&state=s+t&iss=https%3A%2F%2Fauth.example.com%2Ftenant")
