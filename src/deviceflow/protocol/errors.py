"""OAuth 2.0 error responses as data (RFC 6749 §5.2, RFC 8628 §3.5, RFC 6750 §3.1).

One class per RFC error code. Each carries a fixed public ``description`` that is safe to send, the
HTTP status, and a private ``detail`` that is logged and never sent.
"""

from __future__ import annotations

from typing import ClassVar


class OAuthError(Exception):
    """Base of every error the protocol core can return to a client."""

    error: ClassVar[str] = "server_error"
    description: ClassVar[str] = "The server could not complete the request."
    status_code: int = 400
    """The HTTP status; a class default that an instance may refine (see InvalidClientError)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.error)
        self.detail = detail

    def body(self) -> dict[str, str]:
        """The JSON body of RFC 6749 §5.2: ``error`` and a fixed ``error_description``."""
        return {"error": self.error, "error_description": self.description}

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequestError(OAuthError):
    """The request is missing a required parameter, includes an unsupported parameter value (other
    than grant type), repeats a parameter, includes multiple credentials, utilizes more than one
    mechanism for authenticating the client, or is otherwise malformed. (RFC 6749 §5.2)"""

    error = "invalid_request"
    description = "The request is missing a parameter, repeats one, or is otherwise malformed."


class InvalidClientError(OAuthError):
    """Client authentication failed (e.g., unknown client, no client authentication included, or
    unsupported authentication method). (RFC 6749 §5.2)

    When the client tried HTTP Basic, the server MUST answer 401 with ``WWW-Authenticate``.
    Otherwise it answers 400, RFC 6749's default: RFC 9110 §15.5.2 says every 401 MUST carry a
    challenge, and a client that never used an HTTP scheme has none to be challenged with.
    """

    error = "invalid_client"
    description = "Client authentication failed."
    status_code = 401

    def __init__(self, detail: str = "", *, basic_attempted: bool = False) -> None:
        super().__init__(detail)
        self.basic_attempted = basic_attempted
        self.status_code = 401 if basic_attempted else 400

    def headers(self) -> dict[str, str]:
        if self.basic_attempted:
            return {"WWW-Authenticate": 'Basic realm="deviceflow", charset="UTF-8"'}
        return {}


class InvalidGrantError(OAuthError):
    """The provided authorization grant or refresh token is invalid, expired, revoked, does not
    match the redirection URI used in the authorization request, or was issued to another client.
    (RFC 6749 §5.2)"""

    error = "invalid_grant"
    description = "The grant is invalid, was already used, or was issued to another client."


class UnauthorizedClientError(OAuthError):
    """The authenticated client is not authorized to use this authorization grant type.
    (RFC 6749 §5.2)"""

    error = "unauthorized_client"
    description = "The client is not authorized to use this grant type."


class UnsupportedGrantTypeError(OAuthError):
    """The authorization grant type is not supported by the authorization server. (RFC 6749 §5.2)"""

    error = "unsupported_grant_type"
    description = "The grant type is not supported by this server."


class InvalidScopeError(OAuthError):
    """The requested scope is invalid, unknown, malformed, or exceeds the scope granted by the
    resource owner. (RFC 6749 §5.2)"""

    error = "invalid_scope"
    description = "The requested scope is invalid, unknown, or not allowed for this client."


class AuthorizationPendingError(OAuthError):
    """The authorization request is still pending as the end user hasn't yet completed the
    user-interaction steps. (RFC 8628 §3.5)"""

    error = "authorization_pending"
    description = "The user has not yet completed authorization."


class SlowDownError(OAuthError):
    """A variant of "authorization_pending", the authorization request is still pending and
    polling should continue, but the interval MUST be increased by 5 seconds for this and all
    subsequent requests. (RFC 8628 §3.5)"""

    error = "slow_down"
    description = "Polling too fast; increase the interval by 5 seconds."


class AccessDeniedError(OAuthError):
    """The authorization request was denied. (RFC 8628 §3.5)"""

    error = "access_denied"
    description = "The user denied the authorization request."


class ExpiredTokenError(OAuthError):
    """The "device_code" has expired, and the device authorization session has concluded.
    (RFC 8628 §3.5)"""

    error = "expired_token"
    description = "The device code has expired."


class InvalidTokenError(OAuthError):
    """The access token provided is expired, revoked, malformed, or invalid for other reasons.
    (RFC 6750 §3.1) The resource server SHOULD respond with 401 and ``WWW-Authenticate``."""

    error = "invalid_token"
    description = "The access token is invalid or has expired."
    status_code = 401

    def headers(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": f'Bearer realm="deviceflow", error="{self.error}", '
            f'error_description="{self.description}"'
        }


class UnsupportedTokenTypeError(OAuthError):
    """The authorization server does not support the revocation of the presented token type.
    That is, the client tried to revoke an access token on a server not supporting this
    feature. (RFC 7009 §2.2.1)"""

    error = "unsupported_token_type"
    description = "The server does not revoke this type of token."


class ServerError(OAuthError):
    """The authorization server encountered an unexpected condition. (RFC 6749 §4.1.2.1)"""

    error = "server_error"
    description = "The server could not complete the request."
    status_code = 500


class TemporarilyUnavailableError(OAuthError):
    """The authorization server is currently unable to handle the request due to a temporary
    overloading or maintenance of the server. (RFC 6749 §4.1.2.1)

    Given ``retry_after``, it answers a spent rate limit instead of an outage: HTTP 429 Too Many
    Requests with ``Retry-After`` (RFC 6585 §4). RFC 6749 §5.2 has no code for a rate limit and
    RFC 8628 §3.2 answers device authorization errors as §5.2 does; ``slow_down`` (§3.5) is a
    polling instruction, and an unregistered code (``rate_limited``) is one no client knows.
    This registered code says "temporary overloading", which a generic client retries.
    """

    error = "temporarily_unavailable"
    description = "The server is temporarily unable to handle the request."
    status_code = 503

    def __init__(self, detail: str = "", *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.status_code = 503 if retry_after is None else 429

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, self.retry_after))}
