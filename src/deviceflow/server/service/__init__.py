"""The only place that opens a transaction: load → protocol decides → persist.

Split by concern, each part composing the few ports it needs from one ``ServiceContext``:
``tokens`` (device authorization, the token endpoint and its grants, userinfo), ``revocation``
(ending logins and access tokens, RFC 7009), ``introspection`` (RFC 7662), ``verification``
(the pages' code entry and decisions), ``authorization`` (browser authorization: /authorize
and its codes, RFC 6749 §4.1), ``accounts`` (sign-in), ``sessions`` (the pages' sign-ins
kept on the server), ``revocation`` (ending logins: refresh tokens, access-token denylist,
audit), ``introspection``, ``devices`` ("Your devices"), ``admin`` (the operator's users,
clients and signed-in devices), ``audit`` (the audit log, ``ServiceContext.audit``). Nothing
here knows about HTTP.
"""

from __future__ import annotations

import time

from ...protocol.codes import CodeSource
from ...protocol.models import Timestamp
from ...storage.interface import Store
from ..keys import KeyRing
from ..network import NetworkLookup
from ..polling import PollState
from ..ratelimit import Limiter
from .accounts import AccountService, SignIn, SignInRefused
from .admin import AdminRefused, AdminService
from .audit import AuditService
from .authorization import AuthorizationService
from .consents import ConsentService, RememberedConsent, Withdrawn
from .context import CLIENT_CACHE_SECONDS, Clock, ServiceContext, ServicePolicy
from .devices import DeviceService, SignedInDevice
from .factors import FactorMethod, FactorRefused, FactorService
from .introspection import IntrospectionService
from .notify import Notifier
from .revocation import LoginEnded, RevocationService
from .sessions import SessionService, SignedIn
from .tokens import TokenService
from .verification import (
    CodeAttempt,
    CodeEntry,
    CodeRefused,
    DecisionOutcome,
    PendingRequest,
    Throttled,
    VerificationService,
)


class DeviceFlowService:
    """One server process's service: the shared context and the parts built on it."""

    def __init__(
        self,
        store: Store,
        keyring: KeyRing,
        policy: ServicePolicy,
        limiter: Limiter,
        *,
        clock: Clock = time.time,
        codes: CodeSource | None = None,
        poll_state: PollState | None = None,
        notifier: Notifier | None = None,
        network: NetworkLookup | None = None,
    ) -> None:
        self.ctx = ServiceContext(store, keyring, policy, limiter, clock=clock, codes=codes,
                                  poll_state=poll_state, notifier=notifier, network=network)
        self.revocation = RevocationService(self.ctx)
        self.authorization = AuthorizationService(self.ctx, self.revocation)
        self.tokens = TokenService(self.ctx, self.authorization)
        self.verification = VerificationService(self.ctx)
        self.accounts = AccountService(self.ctx)
        self.sessions = SessionService(self.ctx)
        self.introspection = IntrospectionService(self.ctx, self.revocation)
        self.devices = DeviceService(self.ctx, self.revocation)
        self.factors = FactorService(self.ctx)
        self.consents = ConsentService(self.ctx, self.revocation)

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def keyring(self) -> KeyRing:
        return self.ctx.keyring

    @property
    def policy(self) -> ServicePolicy:
        return self.ctx.policy

    @property
    def limiter(self) -> Limiter:
        return self.ctx.limiter

    @property
    def poll_state(self) -> PollState:
        return self.ctx.poll_state

    def now(self) -> Timestamp:
        return self.ctx.now()


__all__ = [
    "CLIENT_CACHE_SECONDS",
    "AccountService",
    "AdminRefused",
    "AdminService",
    "AuditService",
    "AuthorizationService",
    "CodeAttempt",
    "CodeEntry",
    "CodeRefused",
    "ConsentService",
    "DecisionOutcome",
    "DeviceFlowService",
    "DeviceService",
    "FactorMethod",
    "FactorRefused",
    "FactorService",
    "IntrospectionService",
    "LoginEnded",
    "Notifier",
    "PendingRequest",
    "RememberedConsent",
    "RevocationService",
    "ServiceContext",
    "ServicePolicy",
    "SessionService",
    "SignIn",
    "SignInRefused",
    "SignedIn",
    "SignedInDevice",
    "Throttled",
    "TokenService",
    "VerificationService",
    "Withdrawn",
]
