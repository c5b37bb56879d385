"""What the sync and async clients share: configuration, decisions and results, no I/O.

The drivers (sync.py, aio.py) only differ in how they send requests, sleep, and take the cache
lock; everything they decide is decided here or in the flows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field

from deviceflow.client.browser_flow import BrowserEvent, BrowserReply, obtain_browser_token
from deviceflow.client.cache import CacheKey, CacheRecord, TokenCache
from deviceflow.client.client_credentials import obtain_client_token
from deviceflow.client.discovery import resolve_metadata
from deviceflow.client.errors import ConfigurationError, DiscoveryError, SignInRequiredError
from deviceflow.client.flow import (
    ClientAuth,
    Clock,
    Event,
    Flow,
    ServerMetadata,
    ShowCode,
    choose_secret_method,
    obtain_token,
)
from deviceflow.client.profiles import FlowKind, Profile
from deviceflow.client.providers import ProviderKind, Quirks, provider_for
from deviceflow.client.tokens import DeviceCode, TokenSet, decode_jwt_unverified

__all__ = [
    "Account",
    "ClientOptions",
    "EventCallback",
    "SystemClock",
    "TokenRequest",
    "account_from",
]

EventCallback = Callable[[Event], None]


class SystemClock:
    """The real clock: monotonic for polling deadlines, wall time for token expiry."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


@dataclass(frozen=True, slots=True)
class TokenRequest:
    scopes: tuple[str, ...] = ()
    audience: str | None = None
    force: bool = False
    timeout: float | None = None
    sign_in: bool = True  # False: cache or silent refresh only, never a sign-in
    flow: FlowKind = FlowKind.DEVICE_CODE


@dataclass(frozen=True, slots=True)
class Account:
    """Who the cached tokens belong to, as far as an (unverified) ID or access token says."""

    name: str | None
    subject: str | None

    @property
    def display(self) -> str:
        return self.name or self.subject or "an unknown account"


def account_from(record: CacheRecord | None) -> Account | None:
    if record is None:
        return None
    candidates = [record.id_token] + [entry.token.access_token for entry in record.tokens]
    for token in candidates:
        if not token:
            continue
        try:
            claims = decode_jwt_unverified(token).claims
        except ValueError:
            continue
        name = next(
            (
                claims[k]
                for k in ("preferred_username", "email", "upn", "name", "username")
                if isinstance(claims.get(k), str)
            ),
            None,
        )
        subject = claims.get("sub")
        return Account(
            name if isinstance(name, str) else None,
            subject if isinstance(subject, str) else None,
        )
    return Account(None, None)


def ad_hoc_profile(
    profile: Profile | None,
    *,
    client_id: str | None,
    issuer: str | None,
    provider: ProviderKind | str,
    tenant_id: str | None,
    scopes: Iterable[str],
    audience: str | None,
) -> Profile:
    """The given profile, or an unsaved one built from keyword arguments (both clients accept
    either, so programs need no profiles file)."""
    if profile is not None:
        return profile
    if not client_id:
        raise ConfigurationError("A client ID is needed (client_id=...).")
    return Profile(
        name="default",
        provider=ProviderKind(provider),
        client_id=client_id,
        issuer=issuer,
        tenant_id=tenant_id,
        scopes=tuple(scopes),
        audience=audience,
    ).validate()


@dataclass
class ClientOptions:
    """The I/O-free half of a client: what to ask for, from whom, and where to keep it."""

    profile: Profile
    cache: TokenCache | None = None
    client_secret: str | None = field(default=None, repr=False)
    clock: Clock = field(default_factory=SystemClock)
    on_event: EventCallback | None = None
    on_code: Callable[[DeviceCode], None] | None = None
    on_notice: Callable[[str], None] | None = None
    metadata: ServerMetadata | None = None
    memory: CacheRecord | None = field(default=None, repr=False)

    @property
    def quirks(self) -> Quirks:
        return provider_for(self.profile.provider).quirks

    @property
    def key(self) -> CacheKey:
        """Where a person's tokens are kept (``key_for`` a request of any flow)."""
        return self.profile.cache_key

    def key_for(self, request: TokenRequest) -> CacheKey:
        return self.profile.cache_key_for(request.flow)

    def forget_cached(self) -> list[str]:
        """Logout: delete the person's tokens and the client's own (client credentials, which
        nothing revokes: they expire); returns where something was removed."""
        if self.cache is None:
            return []
        client_key = self.profile.cache_key_for(FlowKind.CLIENT_CREDENTIALS)
        return self.cache.delete(self.key) + self.cache.delete(client_key)

    def auth(
        self, metadata: ServerMetadata, endpoint_methods: tuple[str, ...] = ()
    ) -> ClientAuth:
        method = choose_secret_method(metadata, self.quirks, endpoint_methods)
        return ClientAuth(self.profile.client_id, self.client_secret, method)

    def scopes(self, request: TokenRequest) -> tuple[str, ...]:
        if request.flow is FlowKind.CLIENT_CREDENTIALS:
            return self.profile.client_credentials_scopes(request.scopes)
        return self.profile.scopes_for(request.scopes)

    def audience(self, request: TokenRequest) -> str | None:
        return request.audience or self.profile.audience

    def metadata_flow(self) -> Flow[ServerMetadata]:
        return resolve_metadata(
            ProviderKind(self.profile.provider),
            self.profile.effective_issuer,
            tenant_id=self.profile.tenant_id,
        )

    def known_metadata(self) -> Flow[ServerMetadata]:
        """The server's metadata, discovered once per client and then remembered."""
        if self.metadata is None:
            self.metadata = yield from self.metadata_flow()
        return self.metadata

    def extra_params(self, request: TokenRequest) -> tuple[tuple[str, str], ...]:
        audience = self.audience(request)
        # Auth0 selects the API by "audience" in the device authorization request (Auth0 docs,
        # "Call Your API Using the Device Authorization Flow", step "Request device code").
        return (("audience", audience),) if audience else ()

    def cached(self, record: CacheRecord | None, request: TokenRequest) -> TokenSet | None:
        if record is None or request.force:
            return None
        return record.find(self.scopes(request), self.audience(request), now=self.clock.time())

    def check_sign_in_allowed(self, record: CacheRecord | None, request: TokenRequest) -> None:
        """Without a refresh token only the device flow can help: with ``sign_in=False`` say so
        before any request (a refused refresh is caught in ``obtain_token``)."""
        if not request.flow.for_person:
            return  # client credentials: nobody needs to be there
        no_refresh = request.force or record is None or not record.refresh_token
        if not request.sign_in and no_refresh:
            raise SignInRequiredError()

    def acquire_flow(
        self, metadata: ServerMetadata, record: CacheRecord | None, request: TokenRequest
    ) -> Flow[tuple[TokenSet, bool]]:
        """The device flow or client credentials (the browser flow: ``acquire_browser_flow``)."""
        if request.flow is FlowKind.CLIENT_CREDENTIALS:
            return obtain_client_token(
                metadata,
                self.auth(metadata),
                self.scopes(request),
                self.clock,
                quirks=self.quirks,
                extra_params=self.extra_params(request),
            )
        if request.flow is FlowKind.INTERACTIVE_BROWSER:
            raise ConfigurationError(
                "The interactive-browser flow is driven by acquire_browser_flow."
            )
        if not metadata.device_authorization_endpoint:
            raise DiscoveryError(
                f"The server at {metadata.issuer} does not offer the device flow (its discovery "
                "document has no 'device_authorization_endpoint')."
            )
        refresh_token = None if request.force or record is None else record.refresh_token
        return obtain_token(
            metadata,
            self.auth(metadata),
            self.scopes(request),
            self.clock,
            refresh_token=refresh_token,
            quirks=self.quirks,
            extra_params=self.extra_params(request),
            timeout=request.timeout,
            sign_in=request.sign_in,
        )

    def acquire_browser_flow(
        self, metadata: ServerMetadata, record: CacheRecord | None, request: TokenRequest
    ) -> Generator[BrowserEvent, BrowserReply, tuple[TokenSet, bool]]:
        """A silent refresh, else the authorization code flow in the browser (browser_flow.py)."""
        refresh_token = None if request.force or record is None else record.refresh_token
        return obtain_browser_token(
            metadata,
            self.auth(metadata),
            self.scopes(request),
            self.clock,
            refresh_token=refresh_token,
            quirks=self.quirks,
            extra_params=self.extra_params(request),
            timeout=request.timeout,
            sign_in=request.sign_in,
        )

    def updated_record(
        self, record: CacheRecord | None, request: TokenRequest, token: TokenSet, fresh_login: bool
    ) -> CacheRecord:
        # A new sign-in may be another account: start from an empty record then.
        base = CacheRecord(self.key_for(request)) if fresh_login or record is None else record
        return base.with_token(
            self.scopes(request), self.audience(request), token, now=self.clock.time()
        )

    def dispatch(self, event: Event) -> None:
        """Hand an event to the caller's callbacks (the driver's only UI duty)."""
        if self.on_event is not None:
            self.on_event(event)
        if isinstance(event, ShowCode) and self.on_code is not None:
            self.on_code(event.device_code)

    def waiting_notice(self) -> Callable[[], None]:
        def notice() -> None:
            if self.on_notice is not None:
                self.on_notice(
                    f"Waiting for another deviceflow process using profile "
                    f"'{self.profile.name}' to finish..."
                )

        return notice
