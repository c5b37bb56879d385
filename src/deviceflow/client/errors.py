"""Errors raised by the client side of deviceflow.

Errors are data: every class carries a fixed, plain-language sentence a person can act on. Server
text is kept in ``description`` (control characters stripped by whoever shows it) and never
includes a token or secret; the client never puts one in an exception.

The OAuth error classes mirror the RFC 6749 §5.2 and RFC 8628 §3.5 error codes, one class per code,
named after the code in CamelCase + ``Error``.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "AuthorizationPendingError",
    "CacheCorruptError",
    "CacheError",
    "CancelledByUserError",
    "ConfigurationError",
    "DeviceFlowError",
    "DiscoveryError",
    "ExpiredTokenError",
    "InsecureIssuerError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidScopeError",
    "IssuerMismatchError",
    "KeyringUnavailableError",
    "NetworkError",
    "OAuthError",
    "ProfileError",
    "ProfileExistsError",
    "ProfileNotFoundError",
    "ServerResponseError",
    "SignInRequiredError",
    "SlowDownError",
    "TimedOutError",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "oauth_error_for",
]


class DeviceFlowError(Exception):
    """Base class: ``str(error)`` is one plain sentence, safe to show to a person."""


# --- configuration and profiles --------------------------------------------------------------


class ConfigurationError(DeviceFlowError):
    """The profile or the options do not describe a usable server or client."""


class InsecureIssuerError(ConfigurationError):
    """RFC 8414 §2: the issuer "is a URL that uses the https scheme" (we allow loopback http)."""

    def __init__(self, url: str, message: str | None = None) -> None:
        # ``message``: a more precise sentence when the URL is malformed rather than plain http.
        super().__init__(
            message
            or f"Refusing to use {url}: the server address must use https "
            "(plain http is only allowed for loopback addresses such as 127.0.0.1)."
        )
        self.url = url


class ProfileError(ConfigurationError):
    """A problem with the profiles file or one profile in it."""


class ProfileNotFoundError(ProfileError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"No profile named '{name}'. "
            "See 'deviceflow list-profiles', or create it with 'deviceflow create-profile'."
        )
        self.name = name


class ProfileExistsError(ProfileError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"A profile named '{name}' already exists; "
            "change it with 'deviceflow update-profile' or pick another name."
        )
        self.name = name


# --- talking to the server -------------------------------------------------------------------


class NetworkError(DeviceFlowError):
    """The server could not be reached (after retrying)."""


class DiscoveryError(DeviceFlowError):
    """No usable discovery document (OpenID Connect Discovery 1.0 or RFC 8414)."""


class IssuerMismatchError(DiscoveryError):
    """RFC 8414 §3.3: the returned ``issuer`` MUST be identical to the configured issuer."""

    def __init__(self, configured: str, advertised: str) -> None:
        super().__init__(
            f"The discovery document at {configured} names a different issuer ({advertised}); "
            "refusing to use it."
        )
        self.configured = configured
        self.advertised = advertised


class ServerResponseError(DeviceFlowError):
    """The server answered something that is not a valid OAuth response."""


class TimedOutError(DeviceFlowError):
    """The local ``--timeout`` ran out before the person finished signing in."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Gave up waiting for the sign-in after {seconds:g} seconds.")
        self.seconds = seconds


class SignInRequiredError(DeviceFlowError):
    """Only a new sign-in would give a token, and the caller asked for none (``sign_in=False``:
    a kubectl or docker credential helper that nobody is watching)."""

    def __init__(self) -> None:
        super().__init__("A new sign-in is needed, and this run may not start one.")


class CancelledByUserError(DeviceFlowError):
    def __init__(self) -> None:
        super().__init__("Authentication cancelled by user")


# --- OAuth error responses (RFC 6749 §5.2, RFC 8628 §3.5, RFC 7009 §2.2.1) --------------------


class OAuthError(DeviceFlowError):
    """An error response from the authorization server."""

    error: str = "server_error"
    sentence: str = "The server refused the request"

    def __init__(self, error: str | None = None, description: str | None = None) -> None:
        self.error = error or type(self).error
        self.description = description
        text = f"{self.sentence} ({self.error})"
        if description:
            text += f": {description}"
        if not text.endswith("."):
            text += "."
        super().__init__(text)


class AuthorizationPendingError(OAuthError):
    """RFC 8628 §3.5: the authorization request is still pending as the end user hasn't yet
    completed the user-interaction steps."""

    error = "authorization_pending"
    sentence = "The sign-in is still pending"


class SlowDownError(OAuthError):
    """RFC 8628 §3.5: a variant of "authorization_pending", the authorization request is still
    pending and polling should continue, but the interval MUST be increased by 5 seconds."""

    error = "slow_down"
    sentence = "The server asked to poll more slowly"


DENIED_SENTENCE = "The sign-in was declined on the other device."
BROWSER_DENIED_SENTENCE = "The sign-in was denied in the browser."


class AccessDeniedError(OAuthError):
    """RFC 8628 §3.5: the authorization request was denied."""

    error = "access_denied"
    sentence = "The sign-in was denied on the verification page"

    def __init__(self, error: str | None = None, description: str | None = None, *,
                 sentence: str = DENIED_SENTENCE) -> None:
        super().__init__(error, description)
        # One plain sentence; the server's own words are kept in ``description``.
        Exception.__init__(self, sentence)


class ExpiredTokenError(OAuthError):
    """RFC 8628 §3.5: the "device_code" has expired, and the device authorization session has
    concluded."""

    error = "expired_token"
    sentence = "Device code expired"

    def __init__(self, error: str | None = None, description: str | None = None) -> None:
        super().__init__(error, description)
        Exception.__init__(self, "Device code expired. Please try again.")


class InvalidGrantError(OAuthError):
    """RFC 6749 §5.2: the provided authorization grant or refresh token is invalid, expired,
    revoked, or was issued to another client."""

    error = "invalid_grant"
    sentence = "The server rejected the grant"


class InvalidClientError(OAuthError):
    """RFC 6749 §5.2: client authentication failed."""

    error = "invalid_client"
    sentence = "The server does not accept this client ID (or its secret)"


class UnauthorizedClientError(OAuthError):
    """RFC 6749 §5.2: the authenticated client is not authorized to use this grant type."""

    error = "unauthorized_client"
    sentence = "This client is not allowed to use the device flow on this server"


class InvalidScopeError(OAuthError):
    """RFC 6749 §5.2: the requested scope is invalid, unknown, malformed, or exceeds the scope
    granted by the resource owner."""

    error = "invalid_scope"
    sentence = "The server rejected the requested scopes"

    def __init__(
        self,
        error: str | None = None,
        description: str | None = None,
        scopes: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(error, description)
        self.scopes = scopes
        if scopes is not None:
            asked = " ".join(scopes) if scopes else "(none: the client's default scopes)"
            text = f"The server rejected the requested scope(s): {asked} ({self.error}"
            text += f": {description})." if description else ")."
            Exception.__init__(self, text)

    def for_scopes(self, scopes: tuple[str, ...]) -> InvalidScopeError:
        """The same error, naming the scopes that were asked for."""
        return InvalidScopeError(self.error, self.description, scopes)


class UnsupportedGrantTypeError(OAuthError):
    """RFC 6749 §5.2: the grant type is not supported by the authorization server."""

    error = "unsupported_grant_type"
    sentence = "The server does not support this grant type"


_OAUTH_ERRORS: dict[str, type[OAuthError]] = {
    cls.error: cls
    for cls in (
        AuthorizationPendingError,
        SlowDownError,
        AccessDeniedError,
        ExpiredTokenError,
        InvalidGrantError,
        InvalidClientError,
        UnauthorizedClientError,
        InvalidScopeError,
        UnsupportedGrantTypeError,
    )
}


def oauth_error_for(
    error: str, description: str | None, aliases: dict[str, str] | None = None
) -> OAuthError:
    """The exception for an RFC error code; ``aliases`` maps a provider's own codes to RFC ones."""
    canonical = (aliases or {}).get(error, error)
    cls = _OAUTH_ERRORS.get(canonical, OAuthError)
    return cls(error, description)


# --- token cache ---------------------------------------------------------------------------


class CacheError(DeviceFlowError):
    """The token cache cannot be used."""


class CacheCorruptError(CacheError):
    """A cache file that cannot be read or parsed; it is never modified by the reader."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"The token cache file {path} cannot be used ({reason}); it was left untouched. "
            "Run 'deviceflow get-token --force' to sign in again and replace it."
        )
        self.path = path
        self.reason = reason


class KeyringUnavailableError(CacheError):
    def __init__(self, reason: str) -> None:
        super().__init__(
            f"DEVICEFLOW_TOKEN_STORE=keyring, but no system keyring answered ({reason})."
        )
        self.reason = reason
