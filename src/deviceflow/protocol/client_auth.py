"""Client authentication at the token and device authorization endpoints (RFC 6749 §2.3.1,
RFC 8628 §3.1, RFC 8414 ``token_endpoint_auth_methods_supported``)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote_plus

from .codes import verify_client_secret
from .errors import InvalidClientError, InvalidRequestError
from .models import Client

AUTH_METHODS_SUPPORTED: tuple[str, ...] = ("none", "client_secret_basic", "client_secret_post")


class AuthMethod(StrEnum):
    NONE = "none"
    CLIENT_SECRET_BASIC = "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post"


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    secret: str | None
    method: AuthMethod


def parse_client_credentials(
    authorization: str | None, params: Mapping[str, str]
) -> ClientCredentials:
    """Read the client's credentials from ``Authorization: Basic`` or the form, never both.

    RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each request."
    """
    form_id = params.get("client_id")
    form_secret = params.get("client_secret")
    if authorization and authorization[:6].lower() == "basic ":
        if form_secret is not None:
            raise InvalidRequestError("more than one client authentication method")
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidClientError("malformed Basic credentials", basic_attempted=True) from None
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            raise InvalidClientError("malformed Basic credentials", basic_attempted=True)
        # RFC 6749 §2.3.1: id and secret are form-urlencoded before Base64.
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if form_id is not None and form_id != client_id:
            raise InvalidRequestError("client_id in the body differs from Basic credentials")
        if not client_id:
            raise InvalidClientError("empty client id", basic_attempted=True)
        return ClientCredentials(client_id, secret, AuthMethod.CLIENT_SECRET_BASIC)
    if form_id is None:
        raise InvalidClientError("no client authentication")
    if form_secret is not None:
        return ClientCredentials(form_id, form_secret, AuthMethod.CLIENT_SECRET_POST)
    return ClientCredentials(form_id, None, AuthMethod.NONE)


def authenticate_client(credentials: ClientCredentials, client: Client | None) -> Client:
    """Check credentials against the registered client. Public clients identify themselves by
    ``client_id`` alone (RFC 8628 §3.1); confidential ones must prove their secret."""
    basic = credentials.method is AuthMethod.CLIENT_SECRET_BASIC
    if client is None:
        # Spend the same hashing work as a real check so unknown ids are not cheaper to probe.
        verify_client_secret(credentials.secret or "", "0" * 64)
        raise InvalidClientError("unknown client", basic_attempted=basic)
    if client.is_public:
        if credentials.secret:
            raise InvalidClientError("public client presented a secret", basic_attempted=basic)
        return client
    if credentials.secret is None or client.secret_hash is None:
        raise InvalidClientError("confidential client did not authenticate", basic_attempted=basic)
    if not verify_client_secret(credentials.secret, client.secret_hash):
        raise InvalidClientError("wrong client secret", basic_attempted=basic)
    return client
