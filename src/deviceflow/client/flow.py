"""The client side of the device authorization grant, written once, sans-I/O.

Implements RFC 8628 §3.1-§3.5 (device authorization request, polling), RFC 6749 §6 (refresh),
RFC 7009 §2 (revocation); discovery.py holds the discovery flow. Each flow is a generator that
yields events and receives replies (messages.py); retry.py sends with retries and backoff,
responses.py reads the server's answers.

Time comes from an injected ``Clock``; the flows never touch the network, the clock or a terminal
themselves (the design of encode/httpx's ``Auth.auth_flow``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from deviceflow.client.errors import (
    ExpiredTokenError,
    InvalidGrantError,
    InvalidScopeError,
    ServerResponseError,
    SignInRequiredError,
    TimedOutError,
    UnauthorizedClientError,
)
from deviceflow.client.messages import (
    Clock,
    Event,
    Flow,
    HttpRequest,
    HttpResponse,
    Reply,
    SendRequest,
    ShowCode,
    Sleep,
    SleepReason,
    T,
    TransportFailure,
)
from deviceflow.client.providers import Quirks
from deviceflow.client.responses import describe, error_from, json_object, success_object
from deviceflow.client.retry import MAX_BACKOFF, is_transient, retry_after, send, send_with_retry
from deviceflow.client.tokens import (
    TokenSet,
    parse_device_code,
    parse_number,
    parse_token_response,
)
from deviceflow.client.urls import check_secure_url

__all__ = [
    "DEVICE_CODE_GRANT_TYPE",
    "MAX_BACKOFF",
    "ClientAuth",
    "Clock",
    "Event",
    "Flow",
    "HttpRequest",
    "HttpResponse",
    "Reply",
    "SendRequest",
    "ServerMetadata",
    "ShowCode",
    "Sleep",
    "SleepReason",
    "TransportFailure",
    "check_secure_url",
    "device_flow",
    "json_object",
    "obtain_token",
    "post_form",
    "refresh",
    "revoke",
    "send_with_retry",
    "success_object",
]

DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP = 5.0  # RFC 8628 §3.5: "the interval MUST be increased by 5 seconds"
# A margin over the server's interval for clock drift: virtualised clocks (WSL, VMs) can run
# ~10-30% fast and earn endless slow_down answers (cli/oauth device/device_flow.go, cli/cli#9370).
INTERVAL_MARGIN = 1.1
INTERVAL_MARGIN_AFTER_SLOW_DOWN = 1.2


# --- server and client descriptions ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    """The subset of RFC 8414 §2 / OIDC Discovery §3 metadata the client uses."""

    issuer: str
    token_endpoint: str
    device_authorization_endpoint: str
    revocation_endpoint: str | None = None
    jwks_uri: str | None = None
    userinfo_endpoint: str | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] = ()
    # RFC 7662 §4 / RFC 8414 §2: the introspection endpoint and, for both it and RFC 7009's
    # revocation endpoint, the client authentication methods it takes (empty: not said).
    introspection_endpoint: str | None = None
    revocation_endpoint_auth_methods_supported: tuple[str, ...] = ()
    introspection_endpoint_auth_methods_supported: tuple[str, ...] = ()
    # RFC 6749 §3.1 / RFC 7636 §4.3 / RFC 9207 §3: what the authorization code flow needs
    # (browser_flow.py); absent for a server offering only the device flow.
    authorization_endpoint: str | None = None
    code_challenge_methods_supported: tuple[str, ...] = ()
    authorization_response_iss_parameter_supported: bool = False


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """RFC 6749 §2.3.1 client authentication; a public client has no secret."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    method: str = "client_secret_basic"

    def apply(self, form: list[tuple[str, str]], headers: list[tuple[str, str]]) -> None:
        if self.client_secret is None:
            # RFC 8628 §3.1 / RFC 6749 §3.2.1: a public client identifies itself by client_id.
            form.insert(0, ("client_id", self.client_id))
        elif self.method == "client_secret_post":
            form.insert(0, ("client_id", self.client_id))
            form.insert(1, ("client_secret", self.client_secret))
        else:
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before base64 (Appendix B).
            pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
            basic = base64.b64encode(pair.encode()).decode("ascii")
            headers.append(("Authorization", f"Basic {basic}"))
            form.insert(0, ("client_id", self.client_id))


def choose_secret_method(
    metadata: ServerMetadata, quirks: Quirks, endpoint_methods: tuple[str, ...] = ()
) -> str:
    """The secret's method for an endpoint. RFC 8414 §2: when the revocation or introspection
    endpoint's own list is omitted the methods are "determined by other means"; ours is the token
    endpoint's list, which is what providers share across their endpoints."""
    supported = endpoint_methods or metadata.token_endpoint_auth_methods_supported
    if not supported:
        return quirks.secret_auth_method
    for method in (quirks.secret_auth_method, "client_secret_basic", "client_secret_post"):
        if method in supported:
            return method
    return quirks.secret_auth_method


# --- helpers -------------------------------------------------------------------------------


_BASE_HEADERS: tuple[tuple[str, str], ...] = (
    # GitHub answers form-encoded unless asked for JSON ("Authorizing OAuth apps", device flow
    # step 1: "you can receive the response in different formats depending on the Accept header").
    ("Accept", "application/json"),
)


def _post(url: str, fields: list[tuple[str, str]], auth: ClientAuth | None) -> HttpRequest:
    headers = list(_BASE_HEADERS)
    form = list(fields)
    if auth is not None:
        auth.apply(form, headers)
    return HttpRequest("POST", url, tuple(headers), tuple(form))


# --- RFC 8628: device authorization and polling ----------------------------------------------


def device_flow(
    metadata: ServerMetadata,
    auth: ClientAuth,
    scopes: tuple[str, ...],
    clock: Clock,
    *,
    quirks: Quirks | None = None,
    extra_params: tuple[tuple[str, str], ...] = (),
    timeout: float | None = None,
) -> Flow[TokenSet]:
    """Run RFC 8628 §3.1-§3.5 and return the tokens.

    §3.5: "the client SHOULD wait at least the number of seconds specified by the interval
    parameter ... or 5 seconds if none was provided, between polling requests". On slow_down the
    interval grows by 5 s (or to the server's new interval, GitHub style, if larger); polling stops
    at once on access_denied, expired_token or any other error, and locally at ``expires_in``.
    """
    quirks = quirks or Quirks()
    aliases = dict(quirks.error_aliases)
    started = clock.monotonic()
    fields: list[tuple[str, str]] = []
    if scopes:
        fields.append(("scope", " ".join(scopes)))
    fields.extend(extra_params)
    request = _post(metadata.device_authorization_endpoint, fields, auth)
    response = yield from send_with_retry(request, clock=clock)
    try:
        data = success_object(response, metadata.device_authorization_endpoint, aliases)
    except InvalidScopeError as exc:
        # RFC 8628 §3.2 / RFC 6749 §5.2 invalid_scope: say which scopes were asked for.
        raise exc.for_scopes(scopes) from None
    code = parse_device_code(data, received_at=clock.monotonic())
    yield ShowCode(code)

    interval = code.interval
    margin = INTERVAL_MARGIN
    deadline = code.expires_at
    local_deadline = deadline if timeout is None else min(deadline, started + timeout)
    token_request = _post(
        metadata.token_endpoint,
        [("grant_type", DEVICE_CODE_GRANT_TYPE), ("device_code", code.device_code)],
        auth,
    )
    wait, reason, detail = interval * margin, SleepReason.POLL, ""
    failures = 0
    while True:
        now = clock.monotonic()
        if now + wait >= local_deadline:
            # Give up locally: the next poll would come after the code expired (or --timeout).
            remaining = local_deadline - now
            if remaining > 0:
                yield Sleep(remaining, SleepReason.EXPIRY)
            if local_deadline < deadline and timeout is not None:
                raise TimedOutError(timeout)
            raise ExpiredTokenError()
        yield Sleep(
            wait,
            reason,
            detail,
            retry=failures if reason is SleepReason.BACKOFF else 0,
            interval=interval,
        )
        reply = yield from send(token_request)
        if is_transient(reply):
            error = error_from(reply, aliases) if isinstance(reply, HttpResponse) else None
            if error is None or error.error not in ("authorization_pending", "slow_down"):
                # Transient trouble (network, 429, 5xx): back off, keep the code, try again.
                failures += 1
                asked = retry_after(reply, clock)
                if asked is None:
                    wait = min(interval * 2**failures, MAX_BACKOFF)
                else:
                    # The server said when (RFC 9110 §10.2.3): that, not our exponential guess,
                    # but never sooner than the polling interval (RFC 8628 §3.5).
                    wait = max(asked, interval * margin)
                reason, detail = SleepReason.BACKOFF, describe(reply, metadata.token_endpoint)
                continue
        assert isinstance(reply, HttpResponse)
        failures = 0
        error = error_from(reply, aliases)
        if error is None:
            if reply.status != 200:
                raise ServerResponseError(describe(reply, metadata.token_endpoint))
            token_data = json_object(reply)
            if token_data is None:
                raise ServerResponseError(
                    f"The server at {metadata.token_endpoint} did not answer with a JSON object."
                )
            return parse_token_response(
                token_data,
                now=clock.time(),
                requested_scopes=scopes,
                comma_separated_scope=quirks.comma_separated_scope,
            )
        if error.error == "authorization_pending":
            wait, reason, detail = interval * margin, SleepReason.POLL, ""
            continue
        if error.error == "slow_down":
            # GitHub's slow_down carries the new interval ("Error codes for the device flow":
            # "the interval you must now wait ... is included in the response").
            data = json_object(reply) or {}
            try:
                server_interval = parse_number(data.get("interval"), "interval") or 0.0
            except ServerResponseError:
                server_interval = 0.0
            interval = max(interval + SLOW_DOWN_STEP, server_interval)
            margin = INTERVAL_MARGIN_AFTER_SLOW_DOWN
            wait, reason = interval * margin, SleepReason.SLOW_DOWN
            detail = f"The server asked to poll more slowly; now every {interval:g} seconds."
            continue
        if isinstance(error, InvalidScopeError):
            raise error.for_scopes(scopes)
        raise error


# --- RFC 6749 §6: refresh --------------------------------------------------------------------


def refresh(
    metadata: ServerMetadata,
    auth: ClientAuth,
    refresh_token: str,
    clock: Clock,
    *,
    scopes: tuple[str, ...] = (),
    quirks: Quirks | None = None,
) -> Flow[TokenSet]:
    """RFC 6749 §6 refresh. Raises InvalidGrantError when the refresh token is no longer good."""
    quirks = quirks or Quirks()
    fields = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)]
    if scopes:
        fields.append(("scope", " ".join(scopes)))
    request = _post(metadata.token_endpoint, fields, auth)
    response = yield from send_with_retry(request, clock=clock)
    data = success_object(response, metadata.token_endpoint, dict(quirks.error_aliases))
    token = parse_token_response(
        data,
        now=clock.time(),
        requested_scopes=scopes,
        comma_separated_scope=quirks.comma_separated_scope,
    )
    return token


# --- RFC 7009: revocation --------------------------------------------------------------------


def revoke(
    endpoint: str,
    auth: ClientAuth,
    token: str,
    token_type_hint: str,
    *,
    quirks: Quirks | None = None,
) -> Flow[None]:
    """RFC 7009 §2.1. §2.2: "The authorization server responds with HTTP status code 200 if the
    token has been revoked successfully or if the client submitted an invalid token". Raises the
    server's error otherwise (§2.2.1: ``unsupported_token_type`` for a kind it cannot revoke)."""
    quirks = quirks or Quirks()
    request = _post(endpoint, [("token", token), ("token_type_hint", token_type_hint)], auth)
    response = yield from send_with_retry(request, attempts=2, first_delay=0.5)
    if response.status == 200:
        return None
    error = error_from(response, {})
    if error is not None and error.error == "invalid_token" and quirks.invalid_token_is_revoked:
        return None  # the provider's way of saying "already invalid": RFC 7009's 200
    if error is not None:
        raise error
    raise ServerResponseError(describe(response, endpoint))


def run_to_completion(flow: Flow[T], answer: Callable[[Event], Reply]) -> T:
    """Drive a flow with a synchronous answering function (used by tests and drivers)."""
    try:
        event = next(flow)
        while True:
            event = flow.send(answer(event))
    except StopIteration as stop:
        result: T = stop.value
        return result


def obtain_token(
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
) -> Flow[tuple[TokenSet, bool]]:
    """A silent refresh when there is a refresh token, else (or when the server refuses it) the
    device flow. Returns the tokens and whether a person signed in (a fresh login).

    ``sign_in=False`` raises ``SignInRequiredError`` instead of starting the device flow, before
    any device authorization request: nobody is there to enter a code.
    """
    if refresh_token:
        try:
            token = yield from refresh(
                metadata, auth, refresh_token, clock, scopes=scopes, quirks=quirks
            )
            return token, False
        except (InvalidGrantError, InvalidScopeError, UnauthorizedClientError):
            # RFC 6749 §5.2: the refresh token is invalid, expired or revoked, or these scopes
            # exceed it: only a new sign-in helps.
            pass
    if not sign_in:
        raise SignInRequiredError()
    token = yield from device_flow(
        metadata, auth, scopes, clock, quirks=quirks, extra_params=extra_params, timeout=timeout
    )
    return token, True


# The request and response helpers the other grants' modules share (browser_flow.py,
# client_credentials.py): one way to build a token request and to read its answer.
post_form = _post
