"""The grant registry: every grant type the token endpoint knows, found by ``grant_type``."""

from __future__ import annotations

from . import authorization_code, client_credentials, device_code, refresh_token

GRANT_TYPES: tuple[str, ...] = (
    authorization_code.GRANT_TYPE, device_code.GRANT_TYPE, client_credentials.GRANT_TYPE,
    refresh_token.GRANT_TYPE,
)

__all__ = ["GRANT_TYPES", "authorization_code", "client_credentials", "device_code",
           "refresh_token"]
