"""The client side of the authorization code grant with PKCE for a native app, sans-I/O.

RFC 6749 §4.1 (authorization code), RFC 7636 (PKCE, ``S256`` only), RFC 8252 (native apps: the
system browser and a loopback redirect), RFC 9207 (the ``iss`` authorization response parameter)
and OpenID Connect Core §3.1.2.1 (``nonce``). Like flow.py, the flow is a generator; besides
``SendRequest`` it yields two events the driver (loopback.py) answers:

- ``Listen`` → the driver opens a loopback listener and replies ``Listening(port)``;
- ``AwaitRedirect`` → the driver opens ``authorization.url`` in the system browser, answers each
  request to the redirect path with ``authorization.check(query)`` and replies
  ``Redirected(code)`` once one is accepted.

Everything decided (the URL, the state and ``iss`` checks, the token request) is decided here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from deviceflow.client.errors import (
    BROWSER_DENIED_SENTENCE,
    AccessDeniedError,
    ConfigurationError,
    InvalidGrantError,
    InvalidScopeError,
    ServerResponseError,
    SignInRequiredError,
    UnauthorizedClientError,
    oauth_error_for,
)
from deviceflow.client.flow import (
    ClientAuth,
    Clock,
    Event,
    Reply,
    ServerMetadata,
    post_form,
    refresh,
    send_with_retry,
    success_object,
)
from deviceflow.client.providers import Quirks
from deviceflow.client.tokens import TokenSet, decode_jwt_unverified, parse_token_response
from deviceflow.client.tokens import strip_control as _clean

__all__ = [
    "AUTHORIZATION_TIMEOUT",
    "AuthorizationRequest",
    "AwaitRedirect",
    "BrowserEvent",
    "BrowserFlow",
    "BrowserReply",
    "ForeignRedirectError",
    "Listen",
    "Listening",
    "Redirected",
    "browser_sign_in",
    "code_challenge",
    "exchange_code",
    "new_authorization",
    "obtain_browser_token",
]

AUTHORIZATION_TIMEOUT = 300.0  # seconds the person has to sign in, unless --timeout says


# --- the events the driver answers ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listen:
    """Open a listener on the loopback interface, on a port the system picks (RFC 8252 §7.3)."""

    host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Listening:
    port: int


@dataclass(frozen=True, slots=True)
class AwaitRedirect:
    """Open ``authorization.url`` in the browser and wait (``timeout`` s) for the redirect."""

    authorization: AuthorizationRequest
    timeout: float


@dataclass(frozen=True, slots=True)
class Redirected:
    code: str = field(repr=False)


BrowserEvent: TypeAlias = Event | Listen | AwaitRedirect
BrowserReply: TypeAlias = Reply | Listening | Redirected
BrowserFlow: TypeAlias = Generator[BrowserEvent, BrowserReply, "TokenSet"]


class ForeignRedirectError(Exception):
    """A request to the redirect path that is not the answer to this authorization request (no
    or another ``state``): refused, and the listener keeps waiting (RFC 6749 §10.12)."""


# --- the authorization request ---------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def code_challenge(verifier: str) -> str:
    """RFC 7636 §4.2 S256: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """One authorization request and the secrets only this client knows."""

    url: str
    redirect_uri: str
    issuer: str
    iss_required: bool  # RFC 9207 §2.4: the server advertised it, so its absence is refused
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)
    nonce: str | None = field(default=None, repr=False)

    @property
    def callback_path(self) -> str:
        return urlsplit(self.redirect_uri).path or "/"

    def check(self, query: str) -> str:
        """The authorization code from the redirect's query (RFC 6749 §4.1.2).

        Raises ``ForeignRedirectError`` when ``state`` is missing or another one (keep waiting),
        the server's ``OAuthError`` for an error response (§4.1.2.1), and
        ``ServerResponseError`` for an ``iss`` other than the issuer's (RFC 9207 §2.4).
        """
        pairs = parse_qsl(query, keep_blank_values=True)
        params: dict[str, str] = {}
        for name, value in pairs:
            if name in params:
                # RFC 6749 §3.1: "Request and response parameters MUST NOT be included more
                # than once."
                raise ForeignRedirectError(f"the parameter '{name}' appears twice")
            params[name] = value
        state = params.get("state")
        if state is None or not hmac.compare_digest(state.encode(), self.state.encode()):
            raise ForeignRedirectError("its state is not this sign-in's")
        iss = params.get("iss")
        if iss is not None and iss != self.issuer:
            # RFC 9207 §2.4: compare by simple string comparison; on a mismatch the client "MUST
            # NOT proceed with the authorization grant" (a mix-up attack, §1).
            raise ServerResponseError(
                f"The authorization response came from issuer '{_clean(iss)[:200]}', not "
                f"{self.issuer}; the sign-in was stopped."
            )
        if iss is None and self.iss_required:
            raise ServerResponseError(
                f"The authorization response has no 'iss' although {self.issuer} says it sends "
                "one (RFC 9207); the sign-in was stopped."
            )
        error = params.get("error")
        if error:
            description = params.get("error_description")
            refused = oauth_error_for(
                _clean(error)[:100], _clean(description)[:300] if description else None, {}
            )
            if isinstance(refused, AccessDeniedError):  # the person is here, not elsewhere
                refused = AccessDeniedError(refused.error, refused.description,
                                            sentence=BROWSER_DENIED_SENTENCE)
            raise refused
        code = params.get("code")
        if not code:
            raise ServerResponseError("The authorization response has neither a code nor an error.")
        return code


def loopback_redirect_uri(port: int, quirks: Quirks) -> str:
    """RFC 8252 §7.3: "http://127.0.0.1:{port}/{path}" (the port is the listener's)."""
    host = f"[{quirks.loopback_host}]" if ":" in quirks.loopback_host else quirks.loopback_host
    return f"http://{host}:{port}{quirks.callback_path}"


def new_authorization(
    metadata: ServerMetadata,
    client_id: str,
    redirect_uri: str,
    scopes: tuple[str, ...],
    *,
    extra_params: tuple[tuple[str, str], ...] = (),
    entropy: Callable[[int], bytes] = secrets.token_bytes,
) -> AuthorizationRequest:
    """RFC 6749 §4.1.1 with RFC 7636 §4.1-§4.3: a 256-bit verifier (43 characters of the
    unreserved set), its S256 challenge, a 256-bit ``state`` (§10.12) and, when ``openid`` is
    asked for, a ``nonce`` (OpenID Connect Core §3.1.2.1)."""
    if not metadata.authorization_endpoint:
        raise ConfigurationError(
            f"The server at {metadata.issuer} offers no authorization endpoint, so the "
            "interactive-browser flow cannot be used with it; use --flow device-code."
        )
    methods = metadata.code_challenge_methods_supported
    if methods and "S256" not in methods:
        # RFC 7636 §4.2 / RFC 9700 §2.1.1: plain is never sent.
        raise ConfigurationError(
            f"The server at {metadata.issuer} does not support PKCE with S256 "
            f"(code_challenge_methods_supported: {', '.join(methods)})."
        )
    verifier = _b64url(entropy(32))
    state = _b64url(entropy(32))
    nonce = _b64url(entropy(32)) if "openid" in scopes else None
    params: list[tuple[str, str]] = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
    ]
    if scopes:
        params.append(("scope", " ".join(scopes)))
    params += [
        ("state", state),
        ("code_challenge", code_challenge(verifier)),
        ("code_challenge_method", "S256"),
    ]
    if nonce is not None:
        params.append(("nonce", nonce))
    params.extend(extra_params)
    # RFC 6749 §3.1: the endpoint "MAY include a query component, which MUST be retained".
    parts = urlsplit(metadata.authorization_endpoint)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return AuthorizationRequest(
        url=url,
        redirect_uri=redirect_uri,
        issuer=metadata.issuer,
        iss_required=metadata.authorization_response_iss_parameter_supported,
        state=state,
        code_verifier=verifier,
        nonce=nonce,
    )


# --- the token request ------------------------------------------------------------------------


def exchange_code(
    metadata: ServerMetadata,
    auth: ClientAuth,
    authorization: AuthorizationRequest,
    code: str,
    clock: Clock,
    *,
    scopes: tuple[str, ...] = (),
    quirks: Quirks | None = None,
) -> Generator[Event, Reply, TokenSet]:
    """RFC 6749 §4.1.3 with RFC 7636 §4.5's ``code_verifier``; the redirect_uri is the one sent
    in the authorization request. Sent once, never retried: a code is single-use, and a server
    may treat a second redemption as a replay and revoke what the first one issued (RFC 6749
    §4.1.2), so a lost answer means signing in again."""
    quirks = quirks or Quirks()
    fields = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", authorization.redirect_uri),
        ("code_verifier", authorization.code_verifier),
    ]
    request = post_form(metadata.token_endpoint, fields, auth)
    response = yield from send_with_retry(request, attempts=1)
    data = success_object(response, metadata.token_endpoint, dict(quirks.error_aliases))
    token = parse_token_response(
        data,
        now=clock.time(),
        requested_scopes=scopes,
        comma_separated_scope=quirks.comma_separated_scope,
    )
    _check_nonce(token, authorization)
    return token


def _check_nonce(token: TokenSet, authorization: AuthorizationRequest) -> None:
    """OpenID Connect Core §3.1.3.7 step 11: the ID token's ``nonce`` is the one sent. The token
    came straight from the token endpoint, so TLS stands in for its signature (§3.1.3.7 step 6)."""
    if authorization.nonce is None or not token.id_token:
        return
    try:
        claims = decode_jwt_unverified(token.id_token).claims
    except ValueError:
        raise ServerResponseError("The server sent an ID token that is not a JWT.") from None
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(
        nonce.encode(), authorization.nonce.encode()
    ):
        raise ServerResponseError(
            "The ID token's nonce is not the one this sign-in sent; the tokens were refused."
        )


# --- the whole sign-in ------------------------------------------------------------------------


def browser_sign_in(
    metadata: ServerMetadata,
    auth: ClientAuth,
    scopes: tuple[str, ...],
    clock: Clock,
    *,
    quirks: Quirks | None = None,
    extra_params: tuple[tuple[str, str], ...] = (),
    timeout: float | None = None,
    entropy: Callable[[int], bytes] = secrets.token_bytes,
) -> BrowserFlow:
    """Listen on loopback, send the person's browser to the authorization endpoint, take the
    code from the redirect and exchange it (RFC 8252 §4.1, steps 1-5)."""
    quirks = quirks or Quirks()
    # The IP literal of the redirect URI, or IPv4 loopback for a name ("localhost").
    literal = quirks.loopback_host if quirks.loopback_host in ("127.0.0.1", "::1") else None
    listening = yield Listen(literal or "127.0.0.1")
    if not isinstance(listening, Listening):
        raise TypeError("a driver must answer Listen with Listening")
    redirect_uri = loopback_redirect_uri(listening.port, quirks)
    authorization = new_authorization(
        metadata, auth.client_id, redirect_uri, scopes, extra_params=extra_params, entropy=entropy
    )
    redirected = yield AwaitRedirect(authorization, timeout or AUTHORIZATION_TIMEOUT)
    if not isinstance(redirected, Redirected):
        raise TypeError("a driver must answer AwaitRedirect with Redirected")
    token = yield from exchange_code(
        metadata, auth, authorization, redirected.code, clock, scopes=scopes, quirks=quirks
    )
    return token


def obtain_browser_token(
    metadata: ServerMetadata,
    auth: ClientAuth,
    scopes: tuple[str, ...],
    clock: Clock,
    *,
    refresh_token: str | None,
    quirks: Quirks | None = None,
    extra_params: tuple[tuple[str, str], ...] = (),
    timeout: float | None = None,
    sign_in: bool = True,
) -> Generator[BrowserEvent, BrowserReply, tuple[TokenSet, bool]]:
    """flow.obtain_token for the browser: a silent refresh (RFC 6749 §6) when possible, else the
    browser sign-in. Returns the tokens and whether a person signed in."""
    if refresh_token:
        try:
            token = yield from refresh(
                metadata, auth, refresh_token, clock, scopes=scopes, quirks=quirks
            )
            return token, False
        except (InvalidGrantError, InvalidScopeError, UnauthorizedClientError):
            pass  # as in obtain_token: only a new sign-in helps
    if not sign_in:
        raise SignInRequiredError()
    token = yield from browser_sign_in(
        metadata, auth, scopes, clock, quirks=quirks, extra_params=extra_params, timeout=timeout
    )
    return token, True

