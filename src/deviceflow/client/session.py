"""What the server thinks of the cached tokens, sans-I/O: revoke them at logout (RFC 7009 §2) and
ask whether they are still active (RFC 7662 §2). Both drivers (sync.py, aio.py) run these flows.

Nothing here puts a token into a result: a server's error text is scrubbed of the token it was
about before it is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from deviceflow.client.cache import CachedToken, CacheRecord
from deviceflow.client.core import ClientOptions
from deviceflow.client.errors import DeviceFlowError, OAuthError, ServerResponseError
from deviceflow.client.flow import (
    ClientAuth,
    Flow,
    _post,
    revoke,
    send_with_retry,
)
from deviceflow.client.responses import success_object
from deviceflow.client.tokens import parse_number

__all__ = [
    "ActivitySource",
    "Introspection",
    "LogoutResult",
    "RevocationStatus",
    "TokenActivity",
    "TokenRevocation",
    "TokenStatus",
    "introspect",
    "revocation_flow",
    "status_flow",
]

REFRESH_TOKEN = "refresh_token"
ACCESS_TOKEN = "access_token"


def _scrub(text: str, token: str) -> str:
    # A server may quote what it was sent; the token must not reach a terminal or a log.
    return text.replace(token, "***") if token else text


def _kind(token_type_hint: str, scopes: tuple[str, ...]) -> str:
    if token_type_hint == REFRESH_TOKEN:
        return "refresh token"
    return f"access token ({' '.join(scopes)})" if scopes else "access token"


# --- RFC 7009: logout -------------------------------------------------------------------------


class RevocationStatus(StrEnum):
    REVOKED = "revoked"  # the server answered 200 (RFC 7009 §2.2)
    FAILED = "failed"  # the server refused, answered nonsense, or could not be reached
    NOT_OFFERED = "not_offered"  # the server has no revocation endpoint
    NOT_REVOCABLE = "not_revocable"  # the server revokes no token of this kind (§2.2.1)
    EXPIRED = "expired"  # an access token past its expiry: nothing left to revoke


@dataclass(frozen=True, slots=True)
class TokenRevocation:
    """What happened to one cached token at the server."""

    token_type_hint: str  # RFC 7009 §2.1: "refresh_token" or "access_token"
    status: RevocationStatus
    scopes: tuple[str, ...] = ()  # an access token: the scopes it was requested for
    detail: str | None = None

    @property
    def kind(self) -> str:
        return _kind(self.token_type_hint, self.scopes)


@dataclass(frozen=True, slots=True)
class LogoutResult:
    """Where the tokens were forgotten and, token by token, what the server revoked."""

    removed: tuple[str, ...]  # where tokens were forgotten locally
    revocations: tuple[TokenRevocation, ...] = ()
    revocation_endpoint: str | None = None

    @property
    def revocation_supported(self) -> bool:
        return self.revocation_endpoint is not None

    @property
    def failed(self) -> tuple[TokenRevocation, ...]:
        return tuple(r for r in self.revocations if r.status is RevocationStatus.FAILED)

    @property
    def revoked(self) -> bool:
        """The server revoked something and refused nothing."""
        return not self.failed and any(
            r.status is RevocationStatus.REVOKED for r in self.revocations
        )

    @property
    def revocation_error(self) -> str | None:
        failed = self.failed
        return failed[0].detail if failed else None


@dataclass(frozen=True, slots=True)
class _Target:
    token_type_hint: str
    token: str
    scopes: tuple[str, ...] = ()
    expires_at: float | None = None


def _targets(record: CacheRecord) -> list[_Target]:
    # The refresh token first: RFC 7009 §2.1 "If the particular token is a refresh token ... the
    # authorization server SHOULD also invalidate all access tokens based on the same
    # authorization grant"; the access tokens follow for servers that don't.
    targets = []
    if record.refresh_token:
        targets.append(_Target(REFRESH_TOKEN, record.refresh_token))
    for entry in record.tokens:
        if entry.token.access_token:
            targets.append(
                _Target(
                    ACCESS_TOKEN,
                    entry.token.access_token,
                    entry.requested_scopes,
                    entry.token.expires_at,
                )
            )
    return targets


def revocation_flow(options: ClientOptions, record: CacheRecord) -> Flow[LogoutResult]:
    """Revoke every cached token the server can revoke, one by one, and say what became of each.

    A failure stops nothing: each token is tried, and the caller forgets them all locally anyway.
    The result's ``removed`` is left empty for the driver to fill in.
    """
    targets = _targets(record)
    if not targets:
        return LogoutResult(())
    try:
        metadata = yield from options.known_metadata()
    except DeviceFlowError as exc:
        detail = f"the server's endpoints are unknown: {exc}"
        return LogoutResult(
            (),
            tuple(
                TokenRevocation(t.token_type_hint, RevocationStatus.FAILED, t.scopes, detail)
                for t in targets
            ),
        )
    endpoint = metadata.revocation_endpoint
    if endpoint is None:
        return LogoutResult(
            (),
            tuple(
                TokenRevocation(t.token_type_hint, RevocationStatus.NOT_OFFERED, t.scopes)
                for t in targets
            ),
        )
    quirks = options.quirks
    auth = options.auth(metadata, metadata.revocation_endpoint_auth_methods_supported)
    now = options.clock.time()
    results: list[TokenRevocation] = []
    for target in targets:
        hint, scopes = target.token_type_hint, target.scopes
        if hint == ACCESS_TOKEN and not quirks.revokes_access_tokens:
            results.append(TokenRevocation(hint, RevocationStatus.NOT_REVOCABLE, scopes))
            continue
        if hint == ACCESS_TOKEN and target.expires_at is not None and target.expires_at <= now:
            results.append(TokenRevocation(hint, RevocationStatus.EXPIRED, scopes))
            continue
        try:
            yield from revoke(endpoint, auth, target.token, hint, quirks=quirks)
        except OAuthError as exc:
            # RFC 7009 §2.2.1: "unsupported_token_type: The authorization server does not
            # support the revocation of the presented token type."
            status = (
                RevocationStatus.NOT_REVOCABLE
                if exc.error == "unsupported_token_type"
                else RevocationStatus.FAILED
            )
            results.append(TokenRevocation(hint, status, scopes, _scrub(str(exc), target.token)))
        except DeviceFlowError as exc:
            results.append(
                TokenRevocation(
                    hint, RevocationStatus.FAILED, scopes, _scrub(str(exc), target.token)
                )
            )
        else:
            results.append(TokenRevocation(hint, RevocationStatus.REVOKED, scopes))
    return LogoutResult((), tuple(results), endpoint)


# --- RFC 7662: status ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Introspection:
    """RFC 7662 §2.2: the fields of an introspection response the client uses."""

    active: bool
    expires_at: float | None = None


def introspect(
    endpoint: str, auth: ClientAuth, token: str, token_type_hint: str
) -> Flow[Introspection]:
    """RFC 7662 §2.1: POST ``token`` (and a ``token_type_hint``) with client authentication.

    §2.2: "active" is REQUIRED, a boolean; an inactive token's response carries nothing else worth
    reading. "exp" is the expiry in seconds since the epoch.
    """
    request = _post(endpoint, [("token", token), ("token_type_hint", token_type_hint)], auth)
    response = yield from send_with_retry(request, attempts=2, first_delay=0.5)
    data = success_object(response, endpoint, {})
    active = data.get("active")
    if not isinstance(active, bool):
        raise ServerResponseError(
            f"The server at {endpoint} answered an introspection without a boolean 'active'."
        )
    if not active:
        return Introspection(False)
    return Introspection(True, parse_number(data.get("exp"), "exp"))


class ActivitySource(StrEnum):
    INTROSPECTION = "introspection"  # the server said (RFC 7662)
    LOCAL = "local"  # the cache's own expiry


@dataclass(frozen=True, slots=True)
class TokenActivity:
    """Whether one cached token is still good, and who says so."""

    token_type_hint: str
    source: ActivitySource
    active: bool | None  # None: not known locally (clients are not told a refresh token's life)
    expires_at: float | None = None
    note: str | None = None  # why the cache was the source, or what the server refused

    @property
    def kind(self) -> str:
        return _kind(self.token_type_hint, ())


@dataclass(frozen=True, slots=True)
class TokenStatus:
    access_token: TokenActivity | None
    refresh_token: TokenActivity | None


def _latest(record: CacheRecord) -> CachedToken | None:
    entries = [e for e in record.tokens if e.token.access_token]
    if not entries:
        return None
    # The one that lives longest; a token without an expiry counts as the longest-lived.
    return max(entries, key=lambda e: e.token.expires_at or float("inf"))


def _local(
    options: ClientOptions, record: CacheRecord, latest: CachedToken | None, note: str | None
) -> TokenStatus:
    now = options.clock.time()
    access = (
        TokenActivity(
            ACCESS_TOKEN,
            ActivitySource.LOCAL,
            latest.token.is_fresh(now, margin=0),
            latest.token.expires_at,
            note,
        )
        if latest is not None
        else None
    )
    refresh = (
        TokenActivity(REFRESH_TOKEN, ActivitySource.LOCAL, None, None, note)
        if record.refresh_token
        else None
    )
    return TokenStatus(access, refresh)


def status_flow(
    options: ClientOptions, record: CacheRecord, *, ask_server: bool = True
) -> Flow[TokenStatus]:
    """Ask the server (RFC 7662) whether the cached tokens are active when it can be asked, else
    answer from the cache's expiry, and say which source each answer has.

    §2.1: "the endpoint MUST also require some form of authorization to access this endpoint",
    which a public client cannot give: only a profile with a client secret asks the server.
    """
    latest = _latest(record)
    if not ask_server:
        return _local(options, record, latest, "the server was not asked (--offline)")
    if options.client_secret is None:
        return _local(
            options, record, latest,
            "introspection needs client authentication, and this is a public client",
        )
    try:
        metadata = yield from options.known_metadata()
    except DeviceFlowError as exc:
        return _local(options, record, latest, f"the server's endpoints are unknown: {exc}")
    endpoint = metadata.introspection_endpoint
    if endpoint is None:
        return _local(options, record, latest, "the server offers no introspection endpoint")
    auth = options.auth(metadata, metadata.introspection_endpoint_auth_methods_supported)
    fallback = _local(options, record, latest, None)
    answers: dict[str, TokenActivity | None] = {
        ACCESS_TOKEN: fallback.access_token,
        REFRESH_TOKEN: fallback.refresh_token,
    }
    asks = [(REFRESH_TOKEN, record.refresh_token)]
    if latest is not None:
        asks.append((ACCESS_TOKEN, latest.token.access_token))
    for hint, token in asks:
        local = answers[hint]
        if not token or local is None:
            continue
        try:
            found = yield from introspect(endpoint, auth, token, hint)
        except DeviceFlowError as exc:
            note = f"the server's introspection failed: {_scrub(str(exc), token)}"
            answers[hint] = TokenActivity(hint, ActivitySource.LOCAL, local.active,
                                          local.expires_at, note)
            continue
        expires_at = found.expires_at if found.expires_at is not None else local.expires_at
        answers[hint] = TokenActivity(
            hint, ActivitySource.INTROSPECTION, found.active, expires_at if found.active else None
        )
    return TokenStatus(answers[ACCESS_TOKEN], answers[REFRESH_TOKEN])
