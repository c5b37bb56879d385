"""The authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636, RFC 9700 §2.1.1), and the
authorization response's ``iss`` (RFC 9207).

Two halves: the authorization request at ``/authorize`` (§4.1.1), checked before the person
sees anything, and the access token request at ``/token`` (§4.1.3), which redeems the code.

Errors of the authorization request come in two kinds (§4.1.2.1): with a missing or unknown
``client_id`` or a ``redirect_uri`` that is not registered, the server "MUST NOT automatically
redirect the user-agent" (``NoRedirect``: the person sees a page); every other error goes back
to the client at its redirect URI (``RedirectError``) with ``state`` and ``iss``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from .. import pkce, redirects
from ..errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from ..models import (
    AUTHORIZATION_CODE_GRANT,
    PASSWORD_AMR,
    AuthorizationCode,
    Client,
    CodeStatus,
    RequestOrigin,
    Timestamp,
)
from ..params import FormParams
from ..scopes import parse_scope, resolve_scope

GRANT_TYPE = AUTHORIZATION_CODE_GRANT

CODE_LIFETIME = 60
"""Seconds an authorization code lives. RFC 6749 §4.1.2: "A maximum authorization code lifetime
of 10 minutes is RECOMMENDED"; the client redeems it at once, so a minute is plenty."""

MAX_STATE = 512
MAX_NONCE = 255
"""Bounds on values we echo back (``state``) or sign into the ID token (``nonce``). The request
waits in the session cookie, which browsers keep only up to 4096 bytes."""


class NoRedirect(Exception):
    """RFC 6749 §4.1.2.1: the client or its redirect URI cannot be trusted; tell the person on
    a page and send the browser nowhere. The message is one plain sentence for that person."""


class RedirectError(Exception):
    """An error sent back to the client's redirect URI (RFC 6749 §4.1.2.1)."""

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str
                 ) -> None:
        super().__init__(error)
        self.redirect_uri = redirect_uri
        self.state = state
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A checked authorization request, waiting for the person's decision. Kept in the browser's
    signed session cookie between the pages, so it holds nothing secret."""

    client_id: str
    redirect_uri: str
    redirect_uri_given: bool
    scope: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str | None

    def to_session(self) -> dict[str, object]:
        return {"client_id": self.client_id, "redirect_uri": self.redirect_uri,
                "redirect_uri_given": self.redirect_uri_given, "scope": list(self.scope),
                "state": self.state, "nonce": self.nonce, "code_challenge": self.code_challenge}

    @classmethod
    def from_session(cls, value: object) -> AuthorizationRequest | None:
        """Read back what ``to_session`` stored (the cookie is signed; a shape we did not write
        is treated as no request)."""
        if not isinstance(value, Mapping):
            return None
        try:
            scope = value["scope"]
            request = cls(str(value["client_id"]), str(value["redirect_uri"]),
                          bool(value["redirect_uri_given"]),
                          tuple(str(s) for s in scope) if isinstance(scope, list) else (),
                          _optional(value["state"]), _optional(value["nonce"]),
                          _optional(value["code_challenge"]))
        except KeyError:
            return None
        return request


def _optional(value: object) -> str | None:
    return value if isinstance(value, str) else None


def check_request(
    items: Sequence[tuple[str, str]], client: Client | None, server_grants: Sequence[str],
) -> AuthorizationRequest:
    """RFC 6749 §4.1.1 with RFC 7636 §4.3 and RFC 9700 §2.1.1: the request as the server will
    honour it, or ``NoRedirect``, or ``RedirectError``. ``client`` is the registered client
    the request's ``client_id`` names (None when unknown)."""
    # RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once"; a
    # parameter sent without a value is treated as omitted.
    raw: dict[str, str] = {}
    repeated: str | None = None
    for name, value in items:
        if value and name in raw:
            repeated = repeated or name
        elif value:
            raw[name] = value
    if repeated in ("client_id", "redirect_uri"):
        raise NoRedirect(f"The request names {repeated} more than once.")
    if client is None or "client_id" not in raw:
        raise NoRedirect("The application that sent you here is not registered with this "
                         "server.")
    redirect_uri, given = redirect_uri_for(raw.get("redirect_uri"), client)
    state = raw.get("state")
    if state is not None and len(state) > MAX_STATE:
        # Not echoed: the client's own check of it then fails, as it should.
        raise RedirectError(redirect_uri, None, "invalid_request", "state is too long.")

    def refuse(error: str, description: str) -> RedirectError:
        return RedirectError(redirect_uri, state, error, description)

    if repeated is not None:
        raise refuse("invalid_request", f"The {repeated} parameter is repeated.")
    response_type = raw.get("response_type")
    if response_type is None:
        raise refuse("invalid_request", "response_type is missing.")
    if response_type != "code":
        raise refuse("unsupported_response_type", "Only response_type=code is supported.")
    if GRANT_TYPE not in client.grant_types or GRANT_TYPE not in server_grants:
        raise refuse("unauthorized_client",
                     "This client may not use the authorization code grant.")
    if raw.get("response_mode", "query") != "query":
        raise refuse("invalid_request", "Only response_mode=query is supported.")
    if "request" in raw or "request_uri" in raw:
        # OIDC Core §6: request objects are not supported.
        raise refuse("request_not_supported", "Request objects are not supported.")
    challenge = raw.get("code_challenge")
    method = raw.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise refuse("invalid_request", "code_challenge_method without code_challenge.")
        if client.is_public:
            # RFC 9700 §2.1.1: public clients MUST use PKCE.
            raise refuse("invalid_request", "PKCE (code_challenge with S256) is required.")
    else:
        # RFC 7636 §4.3: an absent method means "plain", which is refused like any other.
        if method != pkce.S256:
            raise refuse("invalid_request", "Only code_challenge_method=S256 is supported.")
        if not pkce.is_challenge(challenge):
            raise refuse("invalid_request", "code_challenge is malformed.")
    nonce = raw.get("nonce")
    if nonce is not None and len(nonce) > MAX_NONCE:
        raise refuse("invalid_request", "nonce is too long.")
    try:
        scope = resolve_scope(parse_scope(raw.get("scope")), client.scopes)
    except (InvalidRequestError, InvalidScopeError):
        raise refuse("invalid_scope", "The scope is not allowed for this client.") from None
    if "none" in (raw.get("prompt") or "").split():
        # OIDC Core §3.1.2.1: the person always approves on a page here.
        raise refuse("consent_required", "This server always asks for consent.")
    return AuthorizationRequest(client.client_id, redirect_uri, given, scope, state, nonce,
                                challenge)


def redirect_uri_for(requested: str | None, client: Client) -> tuple[str, bool]:
    """The redirect URI to use, and whether the request named it. RFC 6749 §3.1.2.3: it may be
    omitted only when exactly one is registered (and that one has no variable port)."""
    registered = client.redirect_uris
    if requested is None:
        if len(registered) == 1:
            (only,) = registered
            return only, False
        raise NoRedirect("The application did not say where to send you back to.")
    if not redirects.matches(requested, registered):
        raise NoRedirect("The application asked to send you back to an address it has not "
                         "registered with this server.")
    return requested, True


def response_uri(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """The redirect URI with the response parameters added to its query, keeping any query it
    has (RFC 6749 §3.1.2: "MUST retain the query component"); ``None`` values are left out."""
    parts = urlsplit(redirect_uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def success_uri(request: AuthorizationRequest, code: str, issuer: str) -> str:
    """RFC 6749 §4.1.2 and RFC 9207 §2: ``code``, ``state`` as received, ``iss``."""
    return response_uri(request.redirect_uri, {"code": code, "state": request.state,
                                               "iss": issuer})


def error_uri(redirect_uri: str, state: str | None, error: str, description: str,
              issuer: str) -> str:
    """RFC 6749 §4.1.2.1 and RFC 9207 §2."""
    return response_uri(redirect_uri, {"error": error, "error_description": description,
                                       "state": state, "iss": issuer})


def new_code(request: AuthorizationRequest, code_hash: str, user_id: str, auth_time: Timestamp,
             origin: RequestOrigin, now: Timestamp,
             amr: tuple[str, ...] = PASSWORD_AMR) -> AuthorizationCode:
    """The record of a code issued on the person's approval: single use, ``CODE_LIFETIME``."""
    return AuthorizationCode(
        code_hash=code_hash, client_id=request.client_id, user_id=user_id,
        redirect_uri=request.redirect_uri, redirect_uri_given=request.redirect_uri_given,
        scope=request.scope, code_challenge=request.code_challenge, nonce=request.nonce,
        auth_time=auth_time, created_at=now, expires_at=now + CODE_LIFETIME, origin=origin,
        amr=amr,
    )


# --- the access token request (RFC 6749 §4.1.3) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeRequest:
    code: str
    redirect_uri: str | None
    code_verifier: str | None


@dataclass(frozen=True, slots=True)
class Redeem:
    """Mark the code redeemed (compare-and-set) and, if that wins, issue tokens."""

    record: AuthorizationCode


@dataclass(frozen=True, slots=True)
class Replayed:
    """A redeemed code came back: end the login it began, then answer ``invalid_grant``."""

    family_id: str


def parse(params: FormParams) -> CodeRequest:
    return CodeRequest(code=params.require("code"), redirect_uri=params.get("redirect_uri"),
                       code_verifier=params.get("code_verifier"))


def family_id(record: AuthorizationCode) -> str:
    """The login (refresh-token family) a redemption of ``record`` begins, derived from the
    code's HMAC so a replay finds it (as ``device_code.family_id`` does)."""
    return hashlib.sha256(b"deviceflow-family:code:" + record.code_hash.encode()).hexdigest()[:32]


def redeem(request: CodeRequest, record: AuthorizationCode | None, client: Client,
           now: Timestamp) -> Redeem | Replayed:
    """RFC 6749 §4.1.3: the code was issued to this client, is unused and unexpired, and the
    redirect URI is the one of the authorization request when that named one; RFC 7636 §4.6:
    the verifier matches the challenge; RFC 9700 §2.1.1: a verifier without a challenge in the
    request is refused (a PKCE downgrade). A used code is a replay (§4.1.2)."""
    if GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClientError(f"client {client.client_id!r} lacks authorization_code")
    if record is None:
        raise InvalidGrantError("unknown authorization code")
    if record.client_id != client.client_id:
        raise InvalidGrantError("authorization code issued to another client")
    if record.status is CodeStatus.REDEEMED:
        # §4.1.2: "If an authorization code is used more than once, the authorization server
        # MUST deny the request and SHOULD revoke (when possible) all tokens previously issued
        # based on that authorization code."
        return Replayed(family_id(record))
    if now >= record.expires_at:
        raise InvalidGrantError("authorization code expired")
    if record.redirect_uri_given and request.redirect_uri != record.redirect_uri:
        raise InvalidGrantError("redirect_uri differs from the authorization request's")
    if record.code_challenge is None:
        if request.code_verifier is not None:
            raise InvalidGrantError("code_verifier without a code_challenge")
    elif request.code_verifier is None or not pkce.verify(request.code_verifier,
                                                          record.code_challenge):
        raise InvalidGrantError("code_verifier does not match the code_challenge")
    return Redeem(record)
