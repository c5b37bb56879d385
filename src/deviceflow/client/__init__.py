"""deviceflow's client library: OAuth 2.0 device authorization grant (RFC 8628) for any provider.

Sync and async clients with a token cache shared with the ``deviceflow`` CLI::

    from deviceflow.client import DeviceFlowClient

    with DeviceFlowClient.from_profile("myapp") as client:
        token = client.get_token(on_code=lambda code: print(code.verification_uri, code.user_code))

Names are loaded on first use, so importing this package stays cheap (httpx is only imported with
the clients).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the real imports, for type checkers and IDEs
    from deviceflow.client.aio import AsyncDeviceFlowClient, LoginFinished
    from deviceflow.client.cache import StoreKind, TokenCache
    from deviceflow.client.core import Account, TokenRequest
    from deviceflow.client.discovery import discover
    from deviceflow.client.errors import (
        AccessDeniedError,
        CacheCorruptError,
        CacheError,
        CancelledByUserError,
        ConfigurationError,
        DeviceFlowError,
        DiscoveryError,
        ExpiredTokenError,
        InsecureIssuerError,
        IssuerMismatchError,
        KeyringUnavailableError,
        NetworkError,
        OAuthError,
        ProfileNotFoundError,
        ServerResponseError,
        SignInRequiredError,
        TimedOutError,
    )
    from deviceflow.client.flow import (
        Event,
        HttpRequest,
        HttpResponse,
        SendRequest,
        ServerMetadata,
        ShowCode,
        Sleep,
        SleepReason,
        TransportFailure,
        device_flow,
        refresh,
        revoke,
    )
    from deviceflow.client.profiles import Profile, ProfileStore
    from deviceflow.client.providers import ProviderKind
    from deviceflow.client.session import (
        ActivitySource,
        LogoutResult,
        RevocationStatus,
        TokenActivity,
        TokenRevocation,
        TokenStatus,
        introspect,
    )
    from deviceflow.client.sync import BearerAuth, DeviceFlowClient
    from deviceflow.client.tokens import DeviceCode, TokenSet, decode_jwt_unverified

_EXPORTS: dict[str, str] = {
    "AccessDeniedError": "errors",
    "Account": "core",
    "ActivitySource": "session",
    "AsyncDeviceFlowClient": "aio",
    "BearerAuth": "sync",
    "CacheCorruptError": "errors",
    "CacheError": "errors",
    "CancelledByUserError": "errors",
    "ConfigurationError": "errors",
    "DeviceCode": "tokens",
    "DeviceFlowClient": "sync",
    "DeviceFlowError": "errors",
    "DiscoveryError": "errors",
    "Event": "flow",
    "ExpiredTokenError": "errors",
    "HttpRequest": "flow",
    "HttpResponse": "flow",
    "InsecureIssuerError": "errors",
    "IssuerMismatchError": "errors",
    "KeyringUnavailableError": "errors",
    "LoginFinished": "aio",
    "LogoutResult": "session",
    "NetworkError": "errors",
    "OAuthError": "errors",
    "Profile": "profiles",
    "ProfileNotFoundError": "errors",
    "ProfileStore": "profiles",
    "ProviderKind": "providers",
    "RevocationStatus": "session",
    "SendRequest": "flow",
    "ServerMetadata": "flow",
    "ServerResponseError": "errors",
    "ShowCode": "flow",
    "Sleep": "flow",
    "SleepReason": "flow",
    "StoreKind": "cache",
    "SignInRequiredError": "errors",
    "TimedOutError": "errors",
    "TokenActivity": "session",
    "TokenCache": "cache",
    "TokenRequest": "core",
    "TokenRevocation": "session",
    "TokenSet": "tokens",
    "TokenStatus": "session",
    "TransportFailure": "flow",
    "decode_jwt_unverified": "tokens",
    "device_flow": "flow",
    "discover": "discovery",
    "introspect": "session",
    "refresh": "flow",
    "revoke": "flow",
}

__all__ = [
    "AccessDeniedError",
    "Account",
    "ActivitySource",
    "AsyncDeviceFlowClient",
    "BearerAuth",
    "CacheCorruptError",
    "CacheError",
    "CancelledByUserError",
    "ConfigurationError",
    "DeviceCode",
    "DeviceFlowClient",
    "DeviceFlowError",
    "DiscoveryError",
    "Event",
    "ExpiredTokenError",
    "HttpRequest",
    "HttpResponse",
    "InsecureIssuerError",
    "IssuerMismatchError",
    "KeyringUnavailableError",
    "LoginFinished",
    "LogoutResult",
    "NetworkError",
    "OAuthError",
    "Profile",
    "ProfileNotFoundError",
    "ProfileStore",
    "ProviderKind",
    "RevocationStatus",
    "SendRequest",
    "ServerMetadata",
    "ServerResponseError",
    "ShowCode",
    "SignInRequiredError",
    "Sleep",
    "SleepReason",
    "StoreKind",
    "TimedOutError",
    "TokenActivity",
    "TokenCache",
    "TokenRequest",
    "TokenRevocation",
    "TokenSet",
    "TokenStatus",
    "TransportFailure",
    "decode_jwt_unverified",
    "device_flow",
    "discover",
    "introspect",
    "refresh",
    "revoke",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deviceflow.client' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"deviceflow.client.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
