"""The composition root of the server: reads settings, picks implementations, mounts routes.

Feature flags in ``ServerSettings`` decide both which routes exist and what discovery advertises,
from the same values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ...config.server import ServerSettings
from ...protocol.errors import OAuthError
from ...protocol.grants import GRANT_TYPES
from ...protocol.metadata import Endpoints, Features, server_metadata
from ...protocol.models import (
    AUTHORIZATION_CODE_GRANT,
    CLIENT_CREDENTIALS_GRANT,
    REFRESH_TOKEN_GRANT,
    DevicePolicy,
    TokenPolicy,
)
from ...protocol.proximity import ProximityPolicy
from ...protocol.scopes import STANDARD_SCOPES
from ...storage.interface import Store
from ..bootstrap import (
    STARTUP_REFUSALS,
    key_source,
    network_lookup,
    open_store,
    refuse_exposed_key_material,
)
from ..keys import KeyRing, load_keyring
from ..network import NetworkLookup
from ..notifications.setup import Delivery, delivery_from_settings
from ..polling import MemoryPollState, PollState, RedisPollState
from ..ratelimit import BruteForcePolicy, Limiter
from ..secretbox import KeySource, SecretBox
from ..service import DeviceFlowService, Notifier, ServicePolicy
from . import errors, pages
from . import metrics as metrics_endpoint
from .branding import Branding
from .endpoints import (
    authorize,
    consent,
    device_authorization,
    devices,
    discovery,
    health,
    introspect,
    revoke,
    second_factor,
    security,
    token,
    userinfo,
    verification,
)
from .metrics import Metrics
from .middleware import (
    QUIET_PATHS,
    SESSION_PREFIXES,
    DeferredSessionMiddleware,
    IssuerPathMiddleware,
    RequestContextMiddleware,
)

log = logging.getLogger("deviceflow.server")

ENDPOINTS = Endpoints()
_MAX_BATCHES_PER_ROUND = 1000


def brute_force_policy(settings: ServerSettings) -> BruteForcePolicy:
    return BruteForcePolicy(
        code_per_session=settings.limit_code_per_session,
        code_per_ip=settings.limit_code_per_ip,
        code_global=settings.limit_code_global,
        code_per_account=settings.limit_code_per_account,
        login_per_account=settings.limit_login_per_account,
        login_per_ip=settings.limit_login_per_ip,
        mfa_per_account=settings.limit_mfa_per_account,
        device_authorization_per_ip=settings.limit_device_authorization_per_ip,
        device_codes_per_client=settings.limit_device_codes_per_client,
    )


def grant_types(settings: ServerSettings) -> tuple[str, ...]:
    """The registry's grants the settings enable: what the token endpoint accepts and what
    discovery advertises, from the same tuple."""
    enabled = {
        REFRESH_TOKEN_GRANT: settings.enable_refresh_token,
        CLIENT_CREDENTIALS_GRANT: settings.enable_client_credentials,
        AUTHORIZATION_CODE_GRANT: settings.enable_authorization_code,
    }
    return tuple(g for g in GRANT_TYPES if enabled.get(g, True))


def limiter_storage_uri(settings: ServerSettings) -> str:
    if settings.redis:
        # limits' async Redis storage on redis-py (already a dependency) rather than coredis.
        return "async+" + settings.redis
    return "async+memory://"


def create_app(
    settings: ServerSettings,
    *,
    store: Store | None = None,
    kek: KeySource | None = None,
    clock: Callable[[], float] | None = None,
    delivery: Delivery | None = None,
    network: NetworkLookup | None = None,
) -> Starlette:
    """Build the ASGI app. ``store`` overrides the configured database (tests use the memory
    store); otherwise the SQL store for ``settings.effective_db`` is opened at start-up, after
    refusing key material other users can read.

    ``delivery`` overrides the notification senders the settings name (tests).

    ``kek`` is the key-encryption key of the server secrets: by default the one the settings
    name (``DEVICEFLOW_SECRET_KEY`` or the key file); with a ``store`` handed in, a fresh key for
    this app alone (a memory store lives no longer than the app anyway).

    ``network`` overrides the network lookup the settings name (tests inject their own).

    A start-up refusal (an exposed file, a missing or wrong key) is kept in
    ``app.state.startup_error`` too, for a caller that only sees "did not start"."""
    issuer = settings.effective_issuer
    scopes = STANDARD_SCOPES
    metrics = Metrics.from_env() if settings.enable_metrics else Metrics(enabled=False)
    grants = grant_types(settings)
    policy = ServicePolicy(
        device=DevicePolicy(
            verification_uri=issuer.rstrip("/") + ENDPOINTS.verification,
            expires_in=settings.device_code_expires_in,
            interval=settings.interval,
        ),
        token=TokenPolicy(
            issuer=issuer,
            access_token_lifetime=settings.access_token_lifetime,
            id_token_lifetime=settings.id_token_lifetime,
            refresh_token_lifetime=settings.refresh_token_lifetime,
            refresh_token_absolute_lifetime=settings.refresh_token_absolute_lifetime,
            refresh_token_reuse_grace=settings.refresh_token_reuse_grace,
            access_token_audience=settings.access_token_audience,
        ),
        grant_types=grants,
        expired_code_retention=settings.expired_code_retention,
        session_lifetime=settings.session_lifetime,
        approval_max_age=settings.approval_max_age,
        audit_retention=settings.audit_retention,
        proximity_policy=ProximityPolicy(settings.proximity_policy),
    )

    async def _keyring(active: Store) -> KeyRing:
        source = kek or (key_source(settings) if store is None else SecretBox.generate())
        try:
            return await load_keyring(active, source, settings.signing_alg,
                                      settings.extra_signing_algs, clock=clock or time.time)
        except BaseException:
            if store is None:
                await active.close()
            raise

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own_store = store is None
        active: Store
        try:
            # First: a missing network database refuses the start before any file is made.
            lookup = network or network_lookup(settings)
            if store is None:
                refuse_exposed_key_material(settings)
                active = await open_store(settings.effective_db,
                                          migrate=settings.migrate_on_start)
            else:
                active = store
            keyring = await _keyring(active)
            sending = delivery or delivery_from_settings(settings)
        except STARTUP_REFUSALS as exc:
            app.state.startup_error = exc
            raise
        limiter = Limiter(brute_force_policy(settings), limiter_storage_uri(settings),
                          on_trip=metrics.throttles.inc)
        now = clock or time.time
        poll_state: PollState = (
            RedisPollState(settings.redis) if settings.redis else MemoryPollState()
        )
        notifier = Notifier(now, enabled=sending.destinations.any)
        service = DeviceFlowService(active, keyring, policy, limiter, clock=now,
                                    poll_state=poll_state, notifier=notifier, network=lookup)
        worker = sending.worker(active, now)
        app.state.notifications = worker
        app.state.service = service
        app.state.settings = settings
        app.state.readiness = health.Readiness(active, settings.redis)
        metrics.started()
        app.state.metadata = server_metadata(
            issuer, ENDPOINTS,
            Features(grant_types=grants, scopes=scopes, signing_algs=keyring.algorithms,
                     userinfo=settings.enable_userinfo,
                     revocation=settings.enable_revocation,
                     introspection=settings.enable_introspection),
        )
        tasks = (
            asyncio.create_task(_purge_forever(service, settings.purge_interval,
                                               worker.purge_finished)),
            asyncio.create_task(_reload_keys_forever(keyring, active,
                                                     settings.signing_key_reload_interval)),
            asyncio.create_task(worker.run_forever(settings.notification_poll_interval,
                                                   notifier.wakeup)),
        )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            metrics.stopped()
            await sending.close()
            await app.state.readiness.close()
            await poll_state.close()
            await limiter.close()
            lookup.close()
            if own_store:
                await active.close()

    routes: list[BaseRoute] = [
        *token.routes,  # first: routes are matched in order, and polls are most requests
        *device_authorization.routes,
        *discovery.routes,
        *health.routes,
        *verification.routes,
        *consent.routes,
        *devices.routes,
        *second_factor.routes,
        *security.routes,
        Mount("/static", StaticFiles(packages=[("deviceflow.server.web", "static")]),
              name="static"),
        Route("/brand.css", pages.brand_stylesheet, methods=["GET"], name="brand_stylesheet"),
    ]
    if settings.enable_authorization_code:
        routes.extend(authorize.routes)
    if settings.enable_userinfo:
        routes.extend(userinfo.routes)
    if settings.enable_revocation:
        routes.extend(revoke.routes)
    if settings.enable_introspection:
        routes.extend(introspect.routes)
    if settings.enable_metrics:
        routes.extend(metrics_endpoint.routes)

    prefix = settings.issuer_path
    if prefix:
        # Every route under the issuer's path; RFC 8414 §3.1's host-root discovery beside it.
        routes = [Mount(prefix, routes=routes), *discovery.path_issuer_routes(prefix)]

    https = urlsplit(issuer).scheme == "https"
    middleware = [
        Middleware(RequestContextMiddleware, hsts=https or settings.certfile is not None,
                   metrics=metrics.requests if settings.enable_metrics else None,
                   quiet_paths=frozenset(prefix + p for p in QUIET_PATHS)),
        Middleware(
            DeferredSessionMiddleware,
            session_cookie="deviceflow_session",
            max_age=settings.session_lifetime,
            # The issuer's path (or "/"): the verification pages, "Your devices" (/account) and
            # /authorize share one sign-in, and no other application on the host sees it.
            path=prefix or "/",
            same_site="lax",
            https_only=https,
            prefixes=tuple(prefix + p for p in SESSION_PREFIXES),
        ),
    ]
    if prefix and settings.proxy_strips_issuer_path:
        middleware.insert(0, Middleware(IssuerPathMiddleware, prefix=prefix))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            OAuthError: errors.oauth_error,
            HTTPException: errors.http_error,
            ClientDisconnect: errors.client_disconnect,
            Exception: errors.unexpected_error,
        },
    )
    # Always there, so endpoints call it unconditionally; with metrics off its tallies are no-ops.
    app.state.metrics = metrics
    # Here, not in the lifespan: the error pages show the site name too.
    app.state.branding = Branding.from_settings(settings)
    app.state.issuer_path = prefix
    if settings.metrics_token is not None:
        app.state.metrics_token = settings.metrics_token.get_secret_value().encode()
    return app


async def _purge_forever(service: DeviceFlowService, interval: float,
                         *more: Callable[[], Awaitable[int]]) -> None:
    """Housekeeping off the request path: small batches, then yield to requests. Each kind of
    record drains on its own, so one failing does not stop the others."""
    purges: tuple[Callable[[], Awaitable[int]], ...] = (
        service.tokens.purge_expired,
        service.authorization.purge_expired,
        service.sessions.purge_expired,
        service.ctx.audit.purge_expired,
        *more,
    )
    while True:
        await asyncio.sleep(interval)
        for purge in purges:
            try:
                for _ in range(_MAX_BATCHES_PER_ROUND):
                    if not await purge():
                        break
                    await asyncio.sleep(0.01)  # let requests in between batches
            except Exception:
                log.exception("purge failed; will retry")


async def _reload_keys_forever(keyring: KeyRing, store: Store, interval: float) -> None:
    """Pick up ``deviceflow keys rotate`` without a restart: re-read the signing keys every
    ``interval`` seconds. A failed read keeps the keys the ring has and tries again."""
    while True:
        await asyncio.sleep(interval)
        try:
            await keyring.reload(store)
        except Exception:
            log.exception("reloading the signing keys failed; will retry")


def app_from_env() -> Starlette:
    """The factory each uvicorn worker process calls (``--workers N``): settings come from the
    ``DEVICEFLOW_*`` environment that ``deviceflow serve`` prepared."""
    from ..logs import configure

    settings = ServerSettings()
    configure(settings.log_format, settings.log_level)
    return create_app(settings)
