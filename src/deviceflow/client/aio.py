"""The asynchronous driver (httpx.AsyncClient + asyncio.sleep) and ``AsyncDeviceFlowClient``.

Same flows as the sync driver; blocking cache work (file lock, fsync, keyring) runs in a thread.
Besides callbacks, ``login_events()`` offers the sign-in as an async stream of events.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
)
from dataclasses import dataclass, replace
from typing import Any, TypeAlias, TypeVar

import httpx

from deviceflow.client.browser_flow import BrowserEvent, BrowserReply
from deviceflow.client.cache import CacheKey, CacheRecord, FileLock, StoreKind, TokenCache
from deviceflow.client.core import ClientOptions, SystemClock, TokenRequest, ad_hoc_profile
from deviceflow.client.errors import CacheCorruptError, ConfigurationError
from deviceflow.client.flow import (
    Clock,
    Event,
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
from deviceflow.client.sync import (
    TIMEOUT,
    USER_AGENT,
    describe_transport_error,
    log_exchange,
)
from deviceflow.client.tokens import DeviceCode, TokenSet
from deviceflow.config.client import ClientSettings

__all__ = ["AsyncDeviceFlowClient", "LoginFinished", "async_run_flow", "async_send"]

T = TypeVar("T")
AsyncEventCallback: TypeAlias = Callable[[Event], Awaitable[None] | None]


async def async_send(
    http: httpx.AsyncClient, request: HttpRequest
) -> HttpResponse | TransportFailure:
    started = time.perf_counter()
    reply: HttpResponse | TransportFailure
    try:
        response = await http.request(
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


async def async_run_flow(
    flow: Generator[BrowserEvent, Any, T],
    http: httpx.AsyncClient,
    *,
    on_event: AsyncEventCallback | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    interact: Callable[[BrowserEvent], BrowserReply] | None = None,
) -> T:
    """Drive a sans-I/O flow to its result without blocking the event loop. ``interact`` answers
    the browser flow's events (``LoopbackBrowser``, blocking: it runs in a thread)."""
    try:
        event = next(flow)
        while True:
            reply: BrowserReply = None
            if not isinstance(event, SendRequest | Sleep | ShowCode):
                if interact is None:
                    raise TypeError(f"no driver for {type(event).__name__}")
                if on_event is not None:
                    outcome = on_event(event)  # type: ignore[arg-type]  # the URL, for a view
                    if inspect.isawaitable(outcome):
                        await outcome
                reply = await asyncio.to_thread(interact, event)
            elif isinstance(event, SendRequest):
                reply = await async_send(http, event.request)
            else:
                if on_event is not None:
                    outcome = on_event(event)
                    if inspect.isawaitable(outcome):
                        await outcome
                if isinstance(event, Sleep):
                    await sleep(event.seconds)
            event = flow.send(reply)
    except StopIteration as stop:
        result: T = stop.value
        return result
    finally:
        flow.close()


@dataclass(frozen=True, slots=True)
class LoginFinished:
    """The last event of ``login_events()``: the tokens."""

    token: TokenSet


class AsyncDeviceFlowClient:
    """``DeviceFlowClient`` for asyncio programs."""

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
        http: httpx.AsyncClient | None = None,
        on_code: Callable[[DeviceCode], Awaitable[None] | None] | None = None,
        on_event: AsyncEventCallback | None = None,
        on_notice: Callable[[str], None] | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
            on_notice=on_notice,
        )
        self._on_event = on_event
        self._on_code = on_code
        self._http = http
        self._owns_http = http is None
        self._sleep = sleep
        self._open_browser = open_browser
        # The flow get_token() and auth() use: given, else the profile's, else the device flow.
        self.flow = FlowKind(flow) if flow else (profile.default_flow or FlowKind.DEVICE_CODE)

    @classmethod
    async def from_profile(
        cls,
        name: str | None = None,
        *,
        settings: ClientSettings | None = None,
        **kwargs: object,
    ) -> AsyncDeviceFlowClient:
        settings = settings or ClientSettings.from_env()

        def load() -> tuple[Profile, TokenCache, str | None]:
            profiles = ProfileStore(settings.config_dir).load()
            chosen = name or profiles.resolve_default(settings.profile)
            if chosen is None:
                raise ConfigurationError(
                    "No profile given and no default profile; create one with "
                    "'deviceflow create-profile'."
                )
            profile = profiles.get(chosen)
            cache = TokenCache(settings.data_dir, StoreKind(settings.token_store))
            secret = cache.load_secret(profile.name) if profile.has_client_secret else None
            return profile, cache, secret

        profile, cache, secret = await asyncio.to_thread(load)
        return cls(profile, cache=cache, client_secret=secret, **kwargs)  # type: ignore[arg-type]

    @property
    def profile(self) -> Profile:
        return self.options.profile

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=TIMEOUT, headers={"User-Agent": USER_AGENT})
        return self._http

    async def _dispatch(self, event: Event) -> None:
        if self._on_event is not None:
            outcome = self._on_event(event)
            if inspect.isawaitable(outcome):
                await outcome
        if isinstance(event, ShowCode) and self._on_code is not None:
            outcome = self._on_code(event.device_code)
            if inspect.isawaitable(outcome):
                await outcome

    async def _run(self, flow: Flow[T]) -> T:
        return await async_run_flow(
            flow, self._client(), on_event=self._dispatch, sleep=self._sleep
        )

    async def _run_in_browser(self, flow: Generator[BrowserEvent, Any, T]) -> T:
        browser = LoopbackBrowser(open_browser=self._open_browser, on_notice=self.options.on_notice)
        try:
            return await async_run_flow(
                flow, self._client(), on_event=self._dispatch, sleep=self._sleep,
                interact=browser,
            )
        finally:
            browser.close()  # on cancellation too: the waiting thread's listener stops

    async def aclose(self) -> None:
        if self._http is not None and self._owns_http:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> AsyncDeviceFlowClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def metadata(self) -> ServerMetadata:
        if self.options.metadata is None:
            self.options.metadata = await self._run(self.options.metadata_flow())
        return self.options.metadata

    async def _load(self, *, force: bool, key: CacheKey | None = None) -> CacheRecord | None:
        cache = self.options.cache
        if cache is None:
            memory = self.options.memory
            return memory if memory is None or key is None or memory.key == key else None
        try:
            return await asyncio.to_thread(cache.load, key or self.options.key)
        except CacheCorruptError:
            if force:
                return None
            raise

    async def get_token(
        self,
        scopes: Iterable[str] = (),
        *,
        audience: str | None = None,
        force: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline for the person, not I/O
        sign_in: bool = True,
        flow: FlowKind | str | None = None,
    ) -> TokenSet:
        """As ``DeviceFlowClient.get_token``: cache, then silent refresh, then ``flow`` (unless
        ``sign_in=False``: then ``SignInRequiredError``); the browser's listener waits in a
        thread."""
        request = TokenRequest(
            tuple(scopes), audience, force, timeout, sign_in, FlowKind(flow) if flow else self.flow
        )
        key = self.options.key_for(request)
        hit = self.options.cached(await self._load(force=force, key=key), request)
        if hit is not None:
            return hit
        cache = self.options.cache
        if cache is None:
            return await self._acquire(await self._load(force=force, key=key), request)
        lock = FileLock(cache.lock_path(key))
        await asyncio.to_thread(
            lock.acquire, timeout=timeout, on_wait=self.options.waiting_notice()
        )
        try:
            record = await self._load(force=force, key=key)
            hit = self.options.cached(record, request)
            if hit is not None:
                return hit
            return await self._acquire(record, request)
        finally:
            lock.release()

    async def _acquire(self, record: CacheRecord | None, request: TokenRequest) -> TokenSet:
        self.options.check_sign_in_allowed(record, request)
        metadata = await self.metadata()
        if request.flow is FlowKind.INTERACTIVE_BROWSER:
            token, fresh = await self._run_in_browser(
                self.options.acquire_browser_flow(metadata, record, request)
            )
        else:
            token, fresh = await self._run(self.options.acquire_flow(metadata, record, request))
        updated = self.options.updated_record(record, request, token, fresh)
        if self.options.cache is None:
            self.options.memory = updated
        else:
            await asyncio.to_thread(self.options.cache.save, updated)
        return token.merged_with(TokenSet(access_token="", refresh_token=updated.refresh_token))

    async def login_events(
        self,
        scopes: Iterable[str] = (),
        *,
        force: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline for the person, not I/O
    ) -> AsyncIterator[Event | LoginFinished]:
        """The sign-in as a stream: ``ShowCode`` and ``Sleep`` events, then ``LoginFinished``.

        >>> async for event in client.login_events():
        ...     if isinstance(event, ShowCode): show(event.device_code)
        ...     elif isinstance(event, LoginFinished): token = event.token
        """
        queue: asyncio.Queue[Event | LoginFinished | BaseException] = asyncio.Queue()
        previous = self._on_event

        async def forward(event: Event) -> None:
            if previous is not None:
                outcome = previous(event)
                if inspect.isawaitable(outcome):
                    await outcome
            await queue.put(event)

        async def work() -> None:
            try:
                token = await self.get_token(scopes, force=force, timeout=timeout)
                await queue.put(LoginFinished(token))
            except BaseException as exc:
                await queue.put(exc)

        self._on_event = forward
        task = asyncio.create_task(work())
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, LoginFinished):
                    return
        finally:
            self._on_event = previous
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def logout(self) -> LogoutResult:
        """Revoke at the server (RFC 7009, the refresh token first), then forget locally even if
        revocation failed; the same flow as ``DeviceFlowClient.logout``."""
        try:
            record = await self._load(force=False)
        except CacheCorruptError:
            record = None
        result = await self._run(revocation_flow(self.options, record)) if record else None
        removed: list[str] = []
        if self.options.cache is not None:
            removed = await asyncio.to_thread(self.options.forget_cached)
        elif self.options.memory is not None:
            removed = ["memory"]
        self.options.memory = None
        return replace(result or LogoutResult(()), removed=tuple(removed))

    async def token_status(self, *, ask_server: bool = True) -> TokenStatus | None:
        """Like ``DeviceFlowClient.token_status``: RFC 7662 when possible, else the cache."""
        # The tokens of this client's flow: a client-credentials profile's are its own.
        record = await self._load(force=False, key=self.options.profile.cache_key_for(self.flow))
        if record is None:
            return None
        return await self._run(status_flow(self.options, record, ask_server=ask_server))

    def auth(self) -> AsyncBearerAuth:
        return AsyncBearerAuth(self)


class AsyncBearerAuth(httpx.Auth):
    """RFC 6750 §2.1 Authorization header for ``httpx.AsyncClient``."""

    def __init__(self, client: AsyncDeviceFlowClient) -> None:
        self.client = client

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.client.get_token()
        request.headers["Authorization"] = f"{token.token_type} {token.access_token}"
        response = yield request
        if response.status_code == 401 and token.expires_at is not None:
            renew = TokenRequest(flow=self.client.flow)
            record = await self.client._load(force=False, key=self.client.options.key_for(renew))
            if record is not None:
                stripped = CacheRecord(record.key, record.refresh_token, record.id_token)
                renewed = await self.client._acquire(stripped, renew)
                request.headers["Authorization"] = f"{renewed.token_type} {renewed.access_token}"
                yield request
