"""The synchronous driver (httpx + time.sleep) and ``DeviceFlowClient``.

The driver only performs what the sans-I/O flows ask for; decisions live in flow.py and core.py.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import replace
from typing import Any, TypeVar

import httpx

from deviceflow import __version__
from deviceflow.client.browser_flow import BrowserEvent, BrowserReply
from deviceflow.client.cache import CacheKey, CacheRecord, StoreKind, TokenCache
from deviceflow.client.core import (
    Account,
    ClientOptions,
    EventCallback,
    SystemClock,
    TokenRequest,
    account_from,
    ad_hoc_profile,
)
from deviceflow.client.errors import CacheCorruptError, ConfigurationError
from deviceflow.client.flow import (
    Clock,
    Flow,
    HttpRequest,
    HttpResponse,
    SendRequest,
    ServerMetadata,
    ShowCode,
    Sleep,
    TransportFailure,
)
from deviceflow.client.loopback import LoopbackBrowser, open_system_browser
from deviceflow.client.profiles import FlowKind, Profile, ProfileStore
from deviceflow.client.providers import ProviderKind
from deviceflow.client.session import LogoutResult, TokenStatus, revocation_flow, status_flow
from deviceflow.client.tokens import DeviceCode, TokenSet, strip_control
from deviceflow.config.client import ClientSettings

__all__ = ["DeviceFlowClient", "LogoutResult", "http_client", "run_flow", "send"]

T = TypeVar("T")
log = logging.getLogger("deviceflow.http")
USER_AGENT = f"deviceflow/{__version__}"
TIMEOUT = httpx.Timeout(15.0, connect=5.0)
_SAFE_RESPONSE_FIELDS = ("error", "error_description", "interval", "expires_in", "token_type")


def http_client() -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}, trust_env=True)


# OpenSSL's answers when the other end replies to the TLS handshake with something that is not
# TLS: most often a plain-HTTP server's "400 Bad Request" (3.2+ says "record layer failure").
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST",
                      "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL"})


def describe_transport_error(exc: httpx.TransportError) -> str:
    """A few words for why no HTTP answer came, for "could not connect to URL (…)"."""
    if isinstance(exc, httpx.TimeoutException):
        return "the connection timed out"
    cause: BaseException | None = exc
    while cause is not None:  # httpx → httpcore → the socket or ssl error
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ssl.SSLError) and cause.reason in _NOT_TLS:
            return (
                "the server is not speaking HTTPS on that port; use http:// for a plain-HTTP "
                "server"
            )
        if isinstance(cause, socket.gaierror):
            return "the host name was not found"
        cause = cause.__cause__ or cause.__context__
    text = strip_control(str(exc)) or type(exc).__name__
    return text[:200]


def log_exchange(request: HttpRequest, reply: HttpResponse | TransportFailure, ms: float) -> None:
    """--debug output: method, URL, redacted form, status, timing, and only non-secret fields."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    if isinstance(reply, TransportFailure):
        log.debug("%s %s [%s] -> failed after %.0f ms: %s", request.method, request.url,
                  request.redacted_form(), ms, reply.reason)
        return
    from deviceflow.client.flow import json_object

    data = json_object(reply) or {}
    safe = {k: data[k] for k in _SAFE_RESPONSE_FIELDS if k in data}
    log.debug(
        "%s %s [%s] -> HTTP %d in %.0f ms; fields %s; %s",
        request.method, request.url, request.redacted_form(), reply.status, ms,
        sorted(data), safe,
    )


def send(http: httpx.Client, request: HttpRequest) -> HttpResponse | TransportFailure:
    started = time.perf_counter()
    reply: HttpResponse | TransportFailure
    try:
        response = http.request(
            request.method,
            request.url,
            headers=list(request.headers),
            data=dict(request.form) if request.form is not None else None,
        )
        headers = tuple(response.headers.items())
        reply = HttpResponse(response.status_code, headers, response.content)
    except httpx.TransportError as exc:
        reply = TransportFailure(describe_transport_error(exc))
    log_exchange(request, reply, (time.perf_counter() - started) * 1000)
    return reply


def run_flow(
    flow: Generator[BrowserEvent, Any, T],
    http: httpx.Client,
    *,
    on_event: EventCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
    interact: Callable[[BrowserEvent], BrowserReply] | None = None,
) -> T:
    """Drive a sans-I/O flow to its result with blocking I/O; ``interact`` answers the browser
    flow's events (``LoopbackBrowser``), shown to ``on_event`` first."""
    try:
        event = next(flow)
        while True:
            reply: BrowserReply = None
            if not isinstance(event, SendRequest | Sleep | ShowCode):
                if interact is None:
                    raise TypeError(f"no driver for {type(event).__name__}")
                if on_event is not None:
                    on_event(event)  # type: ignore[arg-type]  # the CLI's view shows the URL
                reply = interact(event)
            elif isinstance(event, SendRequest):
                reply = send(http, event.request)
            elif isinstance(event, Sleep):
                if on_event is not None:
                    on_event(event)
                sleep(event.seconds)
            elif isinstance(event, ShowCode) and on_event is not None:
                on_event(event)
            event = flow.send(reply)
    except StopIteration as stop:
        result: T = stop.value
        return result
    finally:
        flow.close()


class DeviceFlowClient:
    """Get tokens with the device flow, cached and refreshed, from any provider.

    >>> client = DeviceFlowClient(client_id="my-device", issuer="http://127.0.0.1:8000")
    >>> token = client.get_token(on_code=lambda code: print(code.verification_uri, code.user_code))

    Without a ``cache`` the tokens are kept in memory for the life of the object; pass a
    ``TokenCache`` (or use ``from_profile``) to share them with the CLI and other processes.
    """

    def __init__(
        self,
        profile: Profile | None = None,
        *,
        client_id: str | None = None,
        issuer: str | None = None,
        provider: ProviderKind | str = ProviderKind.LOCAL,
        tenant_id: str | None = None,
        scopes: Iterable[str] = (),
        audience: str | None = None,
        client_secret: str | None = None,
        cache: TokenCache | None = None,
        http: httpx.Client | None = None,
        on_code: Callable[[DeviceCode], None] | None = None,
        on_event: EventCallback | None = None,
        on_notice: Callable[[str], None] | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        open_browser: Callable[[str], bool] = open_system_browser,
        flow: FlowKind | str | None = None,
    ) -> None:
        profile = ad_hoc_profile(
            profile, client_id=client_id, issuer=issuer, provider=provider,
            tenant_id=tenant_id, scopes=scopes, audience=audience,
        )
        self.options = ClientOptions(
            profile=profile,
            cache=cache,
            client_secret=client_secret,
            clock=clock or SystemClock(),
            on_event=on_event,
            on_code=on_code,
            on_notice=on_notice,
        )
        self._http = http
        self._owns_http = http is None
        self._sleep = sleep
        self._open_browser = open_browser
        # The flow get_token() and auth() use: given, else the profile's, else the device flow.
        self.flow = FlowKind(flow) if flow else (profile.default_flow or FlowKind.DEVICE_CODE)

    @classmethod
    def from_profile(
        cls,
        name: str | None = None,
        *,
        settings: ClientSettings | None = None,
        **kwargs: object,
    ) -> DeviceFlowClient:
        """A client for a CLI profile, sharing the CLI's token cache (env overrides apply)."""
        settings = settings or ClientSettings.from_env()
        store = ProfileStore(settings.config_dir)
        profiles = store.load()
        chosen = name or profiles.resolve_default(settings.profile)
        if chosen is None:
            raise ConfigurationError(
                "No profile given and no default profile; create one with "
                "'deviceflow create-profile'."
            )
        profile = profiles.get(chosen)
        cache = TokenCache(settings.data_dir, StoreKind(settings.token_store))
        secret = cache.load_secret(profile.name) if profile.has_client_secret else None
        return cls(profile, cache=cache, client_secret=secret, **kwargs)  # type: ignore[arg-type]

    # --- plumbing ------------------------------------------------------------------------------

    @property
    def profile(self) -> Profile:
        return self.options.profile

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = http_client()
        return self._http

    def _run(self, flow: Flow[T]) -> T:
        return run_flow(flow, self._client(), on_event=self.options.dispatch, sleep=self._sleep)

    def _run_in_browser(self, flow: Generator[BrowserEvent, Any, T]) -> T:
        browser = LoopbackBrowser(open_browser=self._open_browser, on_notice=self.options.on_notice)
        try:
            return run_flow(
                flow, self._client(), on_event=self.options.dispatch, sleep=self._sleep,
                interact=browser,
            )
        finally:
            browser.close()

    def close(self) -> None:
        if self._http is not None and self._owns_http:
            self._http.close()
            self._http = None

    def __enter__(self) -> DeviceFlowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def metadata(self) -> ServerMetadata:
        if self.options.metadata is None:
            self.options.metadata = self._run(self.options.metadata_flow())
        return self.options.metadata

    def _load(self, *, force: bool, key: CacheKey | None = None) -> CacheRecord | None:
        cache = self.options.cache
        if cache is None:
            memory = self.options.memory
            return memory if memory is None or key is None or memory.key == key else None
        try:
            return cache.load(key or self.options.key)
        except CacheCorruptError:
            if force:
                return None  # --force: sign in afresh and replace the unusable record
            raise

    # --- the API -------------------------------------------------------------------------------

    def get_token(
        self,
        scopes: Iterable[str] = (),
        *,
        audience: str | None = None,
        force: bool = False,
        timeout: float | None = None,
        on_code: Callable[[DeviceCode], None] | None = None,
        sign_in: bool = True,
        flow: FlowKind | str | None = None,
    ) -> TokenSet:
        """A valid access token: from the cache when it has more than a minute left, else by a
        silent refresh, else by signing in with ``flow``: the device flow (the person signs in
        on another device), the interactive browser (authorization code + PKCE in this
        machine's browser), or client credentials (the client's own token, asked for again
        when it expires).

        ``sign_in=False``: never a person's sign-in; ``SignInRequiredError`` when only it would do.
        """
        if on_code is not None:
            self.options.on_code = on_code
        request = TokenRequest(
            tuple(scopes), audience, force, timeout, sign_in, FlowKind(flow) if flow else self.flow
        )
        key = self.options.key_for(request)
        hit = self.options.cached(self._load(force=force, key=key), request)
        if hit is not None:
            return hit
        cache = self.options.cache
        if cache is None:
            return self._acquire(self._load(force=force, key=key), request)
        with cache.locked(key, timeout=timeout, on_wait=self.options.waiting_notice()):
            # Re-read under the lock: another process may have refreshed meanwhile.
            record = self._load(force=force, key=key)
            hit = self.options.cached(record, request)
            if hit is not None:
                return hit
            return self._acquire(record, request)

    def _acquire(self, record: CacheRecord | None, request: TokenRequest) -> TokenSet:
        self.options.check_sign_in_allowed(record, request)
        metadata = self.metadata()
        if request.flow is FlowKind.INTERACTIVE_BROWSER:
            token, fresh = self._run_in_browser(
                self.options.acquire_browser_flow(metadata, record, request)
            )
        else:
            token, fresh = self._run(self.options.acquire_flow(metadata, record, request))
        updated = self.options.updated_record(record, request, token, fresh)
        if self.options.cache is None:
            self.options.memory = updated
        else:
            self.options.cache.save(updated)
        return token.merged_with(TokenSet(access_token="", refresh_token=updated.refresh_token))

    @property
    def access_token(self) -> str:
        """The current access token, refreshed (or signed in again) when needed."""
        return self.get_token().access_token

    def account(self) -> Account | None:
        return account_from(self._load(force=False))

    def _load_quietly(self) -> CacheRecord | None:
        try:
            return self._load(force=False)
        except CacheCorruptError:
            return None  # unreadable: nothing to revoke or report, only to delete

    def logout(self) -> LogoutResult:
        """Revoke the cached tokens at the server when it offers RFC 7009 revocation (the refresh
        token first), then forget them locally even if revocation failed."""
        record = self._load_quietly()
        result = self._run(revocation_flow(self.options, record)) if record else LogoutResult(())
        removed: list[str] = []
        if self.options.cache is not None:
            removed = self.options.forget_cached()
        elif self.options.memory is not None:
            removed = ["memory"]
        self.options.memory = None
        return replace(result, removed=tuple(removed))

    def token_status(self, *, ask_server: bool = True) -> TokenStatus | None:
        """Whether the cached tokens are still active: asked of the server (RFC 7662) when this
        client may ask, else from the cached expiry. None when nothing is cached."""
        # The tokens of this client's flow: a client-credentials profile's are its own.
        record = self._load(force=False, key=self.options.profile.cache_key_for(self.flow))
        if record is None:
            return None
        return self._run(status_flow(self.options, record, ask_server=ask_server))

    def auth(self) -> BearerAuth:
        """An ``httpx.Auth`` that sends the access token and renews it when needed."""
        return BearerAuth(self)


class BearerAuth(httpx.Auth):
    """RFC 6750 §2.1 Authorization header, with a refresh and one retry on HTTP 401."""

    def __init__(self, client: DeviceFlowClient) -> None:
        self.client = client

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.client.get_token()
        request.headers["Authorization"] = f"{token.token_type} {token.access_token}"
        response = yield request
        if response.status_code == 401 and token.expires_at is not None:
            # The token may have been revoked or expired early: renew it and retry once.
            renew = TokenRequest(flow=self.client.flow)
            record = self.client._load(force=False, key=self.client.options.key_for(renew))
            if record is not None:
                cache_free = CacheRecord(record.key, record.refresh_token, record.id_token)
                renewed = self.client._acquire(cache_free, renew)
                request.headers["Authorization"] = f"{renewed.token_type} {renewed.access_token}"
                yield request
