"""Typed values the protocol core reads and returns. Records are immutable: a protocol function
takes a record and returns a new one; storage persists it with a compare-and-set."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

from .proximity import NetworkFacts, ProximityPolicy

Timestamp = float
"""Seconds since the Unix epoch (UTC). Dialect-neutral in SQL and cheap to compare."""

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_TOKEN_GRANT = "refresh_token"
AUTHORIZATION_CODE_GRANT = "authorization_code"
CLIENT_CREDENTIALS_GRANT = "client_credentials"

CLIENT_SUBJECT_PREFIX = "client:"
"""The ``sub`` namespace reserved for clients acting for themselves (the client credentials
grant): no person's ``sub`` may start with it (RFC 9700 §4.15; ``User`` refuses one)."""

GRANT_SHORT_NAMES: dict[str, str] = {
    "device_code": DEVICE_CODE_GRANT,
    "refresh_token": REFRESH_TOKEN_GRANT,
    "authorization_code": AUTHORIZATION_CODE_GRANT,
    "client_credentials": CLIENT_CREDENTIALS_GRANT,
}


class ClientType(StrEnum):
    """RFC 6749 §2.1 client types."""

    PUBLIC = "public"
    CONFIDENTIAL = "confidential"


class DeviceStatus(StrEnum):
    """The life of one device authorization. Only these transitions exist:
    pending → approved → redeemed, and pending → denied."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    REDEEMED = "redeemed"


class RefreshStatus(StrEnum):
    ACTIVE = "active"
    ROTATED = "rotated"
    REVOKED = "revoked"


class BrowserSessionStatus(StrEnum):
    """A browser sign-in moves only active → revoked; nothing makes a revoked one active."""

    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    client_type: ClientType
    grant_types: frozenset[str]
    scopes: frozenset[str]
    secret_hash: str | None = None
    device_code_lifetime: int | None = None
    created_at: Timestamp = 0.0
    redirect_uris: frozenset[str] = frozenset()
    """Where ``/authorize`` may send the browser back (RFC 6749 §3.1.2), compared exactly,
    except a loopback port (``protocol.redirects``)."""
    # Device-flow rules (docs/operator.md, "Per-client device-flow rules"; RFC 10027 §6.1).
    proximity_policy: ProximityPolicy | None = None
    """This client's proximity policy; None follows the server's ``proximity_policy``."""
    device_networks: tuple[str, ...] = ()
    """CIDR networks device authorization may come from (BCP §6.1.8); empty: anywhere."""
    device_countries: tuple[str, ...] = ()
    """ISO country codes device authorization may come from; empty: anywhere."""
    device_scopes: frozenset[str] | None = None
    """The scopes the device grant may carry (BCP §6.1.9); None: all of ``scopes``."""
    device_access_token_lifetime: int | None = None
    """Access tokens from a device-grant login live at most this long (BCP §6.1.10)."""
    device_refresh_token_lifetime: int | None = None
    """A device-grant login's refresh tokens end at most this long after its approval."""

    @property
    def is_public(self) -> bool:
        return self.client_type is ClientType.PUBLIC


@dataclass(frozen=True, slots=True)
class ClientChanges:
    """What ``deviceflow client update`` changes; None leaves a field as it is."""

    name: str | None = None
    grant_types: frozenset[str] | None = None
    scopes: frozenset[str] | None = None
    device_code_lifetime: int | None = None
    default_device_code_lifetime: bool = False
    """Forget the client's own device code lifetime: the server's default applies again."""
    redirect_uris: frozenset[str] | None = None
    """Replaces every registered redirect URI."""
    expected_redirect_uris: frozenset[str] | None = None
    """Compare-and-set: change the client only while its redirect URIs are still these (adding
    or removing one URI is a read and a write; a concurrent edit must not be lost)."""
    proximity_policy: ProximityPolicy | None = None
    default_proximity_policy: bool = False
    """Forget the client's own proximity policy: the server's applies again."""
    device_networks: tuple[str, ...] | None = None
    """Replaces the list; an empty tuple removes the restriction."""
    device_countries: tuple[str, ...] | None = None
    device_scopes: frozenset[str] | None = None
    """Replaces the allow-list; an empty set removes it."""
    device_access_token_lifetime: int | None = None
    """0 removes the client's own lifetime (the server's applies)."""
    device_refresh_token_lifetime: int | None = None

    def is_empty(self) -> bool:
        return (self.name, self.grant_types, self.scopes, self.device_code_lifetime,
                self.proximity_policy, self.device_networks, self.device_countries,
                self.device_scopes, self.device_access_token_lifetime,
                self.device_refresh_token_lifetime, self.redirect_uris) == (None,) * 11 and not (
            self.default_device_code_lifetime or self.default_proximity_policy)


def with_device_rules(client: Client, changes: ClientChanges) -> Client:
    """``client`` with the device-flow rules ``changes`` names; an empty list or set, or a
    lifetime of 0, removes a rule (as NULL does in SQL)."""
    def lifetime(new: int | None, old: int | None) -> int | None:
        return old if new is None else (new or None)

    return dataclasses.replace(
        client,
        proximity_policy=None if changes.default_proximity_policy
        else changes.proximity_policy or client.proximity_policy,
        device_networks=client.device_networks if changes.device_networks is None
        else changes.device_networks,
        device_countries=client.device_countries if changes.device_countries is None
        else changes.device_countries,
        device_scopes=client.device_scopes if changes.device_scopes is None
        else (changes.device_scopes or None),
        device_access_token_lifetime=lifetime(changes.device_access_token_lifetime,
                                              client.device_access_token_lifetime),
        device_refresh_token_lifetime=lifetime(changes.device_refresh_token_lifetime,
                                               client.device_refresh_token_lifetime),
    )


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    """The stable ``sub``: random, never reused, independent of the username."""
    username: str
    name: str
    password_hash: str
    created_at: Timestamp = 0.0
    email: str | None = None
    """Where "A device signed in to your account" is sent (``user add/update --email``)."""

    def __post_init__(self) -> None:
        # RFC 9700 §4.15: a client's own tokens carry "client:<id>" as sub; a person with such
        # an id would be indistinguishable from that client to a resource server.
        if self.user_id.startswith(CLIENT_SUBJECT_PREFIX):
            raise ValueError("a user id may not be in the namespace reserved for clients")


PASSWORD_AMR: tuple[str, ...] = ("pwd",)
"""RFC 8176 §2 ``amr`` of a password-only sign-in (and of every login recorded before ``amr``
was kept: the password was then the only way to sign in)."""


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """A sign-in on the verification pages, kept on the server. The browser's cookie holds only
    a random id; storage holds its HMAC (``session_hash``), so a copy of the database signs no
    one in, and revoking the row ends the sign-in wherever the cookie was copied to."""

    session_hash: str
    user_id: str
    auth_time: Timestamp
    """When the password was entered (OIDC Core §2 ``auth_time``); each sign-in is a new row."""
    expires_at: Timestamp
    status: BrowserSessionStatus = BrowserSessionStatus.ACTIVE
    amr: tuple[str, ...] = PASSWORD_AMR
    """How the person signed in (RFC 8176 values: ``pwd``, ``otp``, ``mfa``)."""


@dataclass(frozen=True, slots=True)
class RequestOrigin:
    """Where a device authorization request came from, shown on the consent page (RFC 8628 §5.4)."""

    ip_address: str
    user_agent: str


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """One device authorization session (RFC 8628 §3.2). Codes are kept only as HMACs."""

    device_code_hash: str
    user_code_hash: str
    client_id: str
    scope: tuple[str, ...]
    status: DeviceStatus
    created_at: Timestamp
    expires_at: Timestamp
    interval: int
    origin: RequestOrigin
    last_polled_at: Timestamp | None = None
    user_id: str | None = None
    auth_time: Timestamp | None = None
    decided_at: Timestamp | None = None
    network: NetworkFacts | None = None
    """What was known about the device's network when it asked (RFC 10027 §6.1.1); None when
    the proximity policy was off, or for a code from before it was recorded."""
    amr: tuple[str, ...] = PASSWORD_AMR
    """How the approving person had signed in (RFC 8176), set with the decision."""


class CodeStatus(StrEnum):
    """An authorization code moves only issued → redeemed (RFC 6749 §4.1.2: single use)."""

    ISSUED = "issued"
    REDEEMED = "redeemed"


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """An authorization code (RFC 6749 §4.1.2), kept only as an HMAC, with what its redemption
    must match (the redirect URI, the PKCE challenge of RFC 7636 §4.6) and what the tokens will
    say (scope, ``nonce``, ``auth_time``)."""

    code_hash: str
    client_id: str
    user_id: str
    redirect_uri: str
    redirect_uri_given: bool
    """Whether the request named ``redirect_uri``: then the token request must too (§4.1.3)."""
    scope: tuple[str, ...]
    code_challenge: str | None
    nonce: str | None
    auth_time: Timestamp
    created_at: Timestamp
    expires_at: Timestamp
    origin: RequestOrigin
    """The browser that approved, kept with the login for "Your devices"."""
    status: CodeStatus = CodeStatus.ISSUED
    amr: tuple[str, ...] = PASSWORD_AMR
    """How the approving person had signed in (RFC 8176)."""


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """A refresh token (RFC 6749 §6), kept only as an HMAC. Tokens rotated from one device login
    share a ``family_id`` so that replay of a rotated token revokes the whole family.

    ``expires_at`` slides with each rotation; ``family_expires_at`` is fixed at the login and no
    successor outlives it. A rotated token names its successor and when it was rotated, so a
    retry after a lost response can be told from a replay (the reuse grace window)."""

    token_hash: str
    family_id: str
    client_id: str
    user_id: str
    scope: tuple[str, ...]
    issued_at: Timestamp
    expires_at: Timestamp
    auth_time: Timestamp
    family_expires_at: Timestamp
    grant_type: str
    """The grant that began the login (``gty``), carried unchanged through every rotation."""
    status: RefreshStatus = RefreshStatus.ACTIVE
    successor_hash: str | None = None
    rotated_at: Timestamp | None = None
    amr: tuple[str, ...] = PASSWORD_AMR
    """How the person signed in at the login (RFC 8176), carried through every rotation."""


class DenyKind(StrEnum):
    """What a denylist entry names: one access token (its ``jti``) or every access token of a
    login (its refresh-token family, the access token's ``fam`` claim)."""

    JTI = "jti"
    FAMILY = "family"


@dataclass(frozen=True, slots=True)
class DeniedToken:
    """A denylist entry: access tokens matching it are refused although their signature holds.
    Kept until ``expires_at``, when every token it could match has expired on its own."""

    kind: DenyKind
    value: str
    expires_at: Timestamp
    created_at: Timestamp


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """Where and when a device login began: written when its device code is redeemed and a
    refresh-token family starts, so "Your devices" and ``deviceflow sessions`` can say which
    device holds the family (RFC 8628 §5.4's request context, kept past the code's expiry)."""

    family_id: str
    user_id: str
    client_id: str
    approved_at: Timestamp
    origin: RequestOrigin
    expires_at: Timestamp
    """The family's absolute end: after it no token of the family works, and the row is purged."""


@dataclass(frozen=True, slots=True)
class ActiveGrant:
    """A refresh-token family with a live (active, unexpired) token: a signed-in device.
    ``approved_at`` and ``origin`` are None for a family begun before they were recorded."""

    family_id: str
    user_id: str
    client_id: str
    scope: tuple[str, ...]
    last_used_at: Timestamp
    """When the live token was issued: the last refresh, or the approval if never refreshed."""
    approved_at: Timestamp | None
    origin: RequestOrigin | None


@dataclass(frozen=True, slots=True)
class DevicePolicy:
    """Server-wide knobs the device authorization endpoint applies (RFC 8628 §3.2)."""

    verification_uri: str
    expires_in: int = 600
    interval: int = 5


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    issuer: str
    access_token_lifetime: int = 3600
    id_token_lifetime: int = 3600
    refresh_token_lifetime: int = 30 * 24 * 3600
    """Sliding: each rotation starts it again."""
    refresh_token_absolute_lifetime: int = 90 * 24 * 3600
    """Fixed at the login: the end of the whole family."""
    refresh_token_reuse_grace: int = 60
    """Seconds after a rotation in which the previous token may be presented again while its
    successor is unused (a lost response); 0 is strict rotation."""
    access_token_audience: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """The successful token response of RFC 6749 §5.1 (plus ``id_token`` from OIDC Core §3.1.3.3).
    ``refresh_token`` here is plaintext: it exists only on its way to the client."""

    access_token: str
    expires_in: int
    scope: tuple[str, ...]
    refresh_token: str | None = None
    id_token: str | None = None
    token_type: str = "Bearer"

    def body(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "scope": " ".join(self.scope),
        }
        if self.refresh_token is not None:
            out["refresh_token"] = self.refresh_token
        if self.id_token is not None:
            out["id_token"] = self.id_token
        return out
