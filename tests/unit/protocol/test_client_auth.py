"""Client authentication (RFC 6749 §2.3.1, RFC 8628 §3.1): Basic with form-urlencoded parts, the
form, public clients by ``client_id`` alone, and never two methods at once."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import pytest

from deviceflow.protocol import client_auth
from deviceflow.protocol.client_auth import (
    AUTH_METHODS_SUPPORTED,
    AuthMethod,
    ClientCredentials,
    authenticate_client,
    parse_client_credentials,
)
from deviceflow.protocol.codes import hash_client_secret
from deviceflow.protocol.errors import InvalidClientError, InvalidRequestError, OAuthError
from deviceflow.protocol.models import DEVICE_CODE_GRANT, Client, ClientType

SECRET = "s3cr3t+with/odd=chars"
PUBLIC = Client("tv", "TV", ClientType.PUBLIC, frozenset({DEVICE_CODE_GRANT}),
                frozenset({"openid"}))
CONFIDENTIAL = Client("svc:1 x", "Service", ClientType.CONFIDENTIAL,
                      frozenset({DEVICE_CODE_GRANT}), frozenset({"openid"}),
                      secret_hash=hash_client_secret(SECRET))


def basic(client_id: str, secret: str, *, scheme: str = "Basic", encode: bool = True) -> str:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded, joined by ':', then Base64."""
    if encode:
        client_id, secret = quote_plus(client_id), quote_plus(secret)
    return f"{scheme} " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def raw_basic(payload: bytes) -> str:
    return "Basic " + base64.b64encode(payload).decode()


# --- parse_client_credentials --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "form", "expected"),
    [
        (None, {"client_id": "tv"}, ClientCredentials("tv", None, AuthMethod.NONE)),
        (None, {"client_id": "svc", "client_secret": "pw"},
         ClientCredentials("svc", "pw", AuthMethod.CLIENT_SECRET_POST)),
        (basic("svc", "pw"), {}, ClientCredentials("svc", "pw", AuthMethod.CLIENT_SECRET_BASIC)),
        (basic("svc:1 x", SECRET), {},
         ClientCredentials("svc:1 x", SECRET, AuthMethod.CLIENT_SECRET_BASIC)),
        (basic("a+b", "c d%"), {},
         ClientCredentials("a+b", "c d%", AuthMethod.CLIENT_SECRET_BASIC)),
        (basic("svc", "pw:with:colons"), {},
         ClientCredentials("svc", "pw:with:colons", AuthMethod.CLIENT_SECRET_BASIC)),
        (basic("svc", "pw", scheme="basic"), {},
         ClientCredentials("svc", "pw", AuthMethod.CLIENT_SECRET_BASIC)),
        (basic("svc", "pw", scheme="BASIC"), {},
         ClientCredentials("svc", "pw", AuthMethod.CLIENT_SECRET_BASIC)),
        (basic("svc", "pw"), {"client_id": "svc"},
         ClientCredentials("svc", "pw", AuthMethod.CLIENT_SECRET_BASIC)),
        ("Bearer abc", {"client_id": "tv"}, ClientCredentials("tv", None, AuthMethod.NONE)),
    ],
    ids=["public-form", "client_secret_post", "client_secret_basic", "basic-urlencoded-colon",
         "basic-urlencoded-plus-percent", "basic-secret-with-colons", "basic-lowercase-scheme",
         "basic-uppercase-scheme", "basic-with-same-form-id", "other-scheme-ignored"],
)
def test_parse_credentials(
    authorization: str | None, form: dict[str, str], expected: ClientCredentials
) -> None:
    assert parse_client_credentials(authorization, form) == expected


@pytest.mark.parametrize(
    ("authorization", "form", "error", "basic_attempted"),
    [
        (basic("svc", "pw"), {"client_secret": "pw"}, InvalidRequestError, False),
        (basic("svc", "pw"), {"client_id": "svc", "client_secret": "pw"}, InvalidRequestError,
         False),
        (basic("svc", "pw"), {"client_id": "other"}, InvalidRequestError, False),
        (None, {}, InvalidClientError, False),
        (None, {"client_secret": "pw"}, InvalidClientError, False),
        ("Basic !!!not-base64!!!", {}, InvalidClientError, True),
        (raw_basic(b"no-colon"), {}, InvalidClientError, True),
        (raw_basic(b"\xff\xfe:pw"), {}, InvalidClientError, True),
        (raw_basic(b":pw"), {}, InvalidClientError, True),
    ],
    ids=["basic-and-post-secret", "basic-and-post-both", "basic-and-other-form-id",
         "no-credentials", "secret-without-id", "basic-not-base64", "basic-no-colon",
         "basic-not-utf8", "basic-empty-id"],
)
def test_parse_credentials_refuses(
    authorization: str | None, form: dict[str, str], error: type[OAuthError],
    basic_attempted: bool,
) -> None:
    with pytest.raises(error) as info:
        parse_client_credentials(authorization, form)
    if isinstance(info.value, InvalidClientError):
        assert info.value.basic_attempted is basic_attempted
        assert ("WWW-Authenticate" in info.value.headers()) is basic_attempted
        assert info.value.status_code == (401 if basic_attempted else 400)


# --- authenticate_client -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("credentials", "client"),
    [
        (ClientCredentials("tv", None, AuthMethod.NONE), PUBLIC),
        (ClientCredentials("svc:1 x", SECRET, AuthMethod.CLIENT_SECRET_POST), CONFIDENTIAL),
        (ClientCredentials("svc:1 x", SECRET, AuthMethod.CLIENT_SECRET_BASIC), CONFIDENTIAL),
    ],
    ids=["public-by-id", "confidential-post", "confidential-basic"],
)
def test_authenticate_accepts(credentials: ClientCredentials, client: Client) -> None:
    assert authenticate_client(credentials, client) is client


@pytest.mark.parametrize(
    ("credentials", "client", "basic_attempted"),
    [
        (ClientCredentials("nobody", None, AuthMethod.NONE), None, False),
        (ClientCredentials("nobody", "pw", AuthMethod.CLIENT_SECRET_POST), None, False),
        (ClientCredentials("nobody", "pw", AuthMethod.CLIENT_SECRET_BASIC), None, True),
        (ClientCredentials("tv", "pw", AuthMethod.CLIENT_SECRET_POST), PUBLIC, False),
        (ClientCredentials("tv", "pw", AuthMethod.CLIENT_SECRET_BASIC), PUBLIC, True),
        (ClientCredentials("svc:1 x", None, AuthMethod.NONE), CONFIDENTIAL, False),
        (ClientCredentials("svc:1 x", "wrong", AuthMethod.CLIENT_SECRET_POST), CONFIDENTIAL,
         False),
        (ClientCredentials("svc:1 x", "wrong", AuthMethod.CLIENT_SECRET_BASIC), CONFIDENTIAL,
         True),
        (ClientCredentials("svc:1 x", "", AuthMethod.CLIENT_SECRET_BASIC), CONFIDENTIAL, True),
    ],
    ids=["unknown-public", "unknown-post", "unknown-basic", "public-with-post-secret",
         "public-with-basic-secret", "confidential-without-secret", "confidential-wrong-post",
         "confidential-wrong-basic", "confidential-empty-basic"],
)
def test_authenticate_refuses_with_invalid_client(
    credentials: ClientCredentials, client: Client | None, basic_attempted: bool
) -> None:
    with pytest.raises(InvalidClientError) as info:
        authenticate_client(credentials, client)
    error = info.value
    # RFC 6749 §5.2: 401 with WWW-Authenticate when the client tried Basic, and only then
    # (otherwise 400: RFC 9110 §15.5.2 allows no 401 without a challenge).
    assert error.status_code == (401 if basic_attempted else 400)
    assert error.headers() == (
        {"WWW-Authenticate": 'Basic realm="deviceflow", charset="UTF-8"'} if basic_attempted
        else {}
    )
    assert error.body() == {"error": "invalid_client",
                            "error_description": "Client authentication failed."}


def test_unknown_client_costs_a_secret_check(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def spy(secret: str, secret_hash: str) -> bool:
        calls.append(secret)
        return False

    monkeypatch.setattr(client_auth, "verify_client_secret", spy)
    with pytest.raises(InvalidClientError):
        authenticate_client(ClientCredentials("nobody", "guess", AuthMethod.CLIENT_SECRET_POST),
                            None)
    assert calls == ["guess"]


def test_basic_end_to_end_with_odd_characters() -> None:
    header = basic(CONFIDENTIAL.client_id, SECRET)
    credentials = parse_client_credentials(header, {})
    assert authenticate_client(credentials, CONFIDENTIAL) is CONFIDENTIAL


def test_advertised_methods() -> None:
    assert AUTH_METHODS_SUPPORTED == ("none", "client_secret_basic", "client_secret_post")
    assert set(AUTH_METHODS_SUPPORTED) == {m.value for m in AuthMethod}
