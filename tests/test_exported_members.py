"""The public API, pinned (as encode/httpx ``tests/test_exported_members.py`` does): a change to
what ``deviceflow`` or ``deviceflow.protocol.errors`` exports must change this test too."""

from __future__ import annotations

import inspect

import deviceflow
from deviceflow.protocol import errors

ERROR_CLASSES = {
    # class name: (RFC error code, HTTP status)
    "OAuthError": ("server_error", 400),
    "InvalidRequestError": ("invalid_request", 400),
    "InvalidClientError": ("invalid_client", 401),
    "InvalidGrantError": ("invalid_grant", 400),
    "UnauthorizedClientError": ("unauthorized_client", 400),
    "UnsupportedGrantTypeError": ("unsupported_grant_type", 400),
    "InvalidScopeError": ("invalid_scope", 400),
    "AuthorizationPendingError": ("authorization_pending", 400),
    "SlowDownError": ("slow_down", 400),
    "AccessDeniedError": ("access_denied", 400),
    "ExpiredTokenError": ("expired_token", 400),
    "InvalidTokenError": ("invalid_token", 401),
    "UnsupportedTokenTypeError": ("unsupported_token_type", 400),
    "ServerError": ("server_error", 500),
    "TemporarilyUnavailableError": ("temporarily_unavailable", 503),
}


def test_package_all() -> None:
    assert deviceflow.__all__ == ["__version__"]
    assert deviceflow.__version__ == "0.1.0"


def test_every_member_of_all_exists() -> None:
    for name in deviceflow.__all__:
        assert hasattr(deviceflow, name), name


def test_protocol_error_classes() -> None:
    public = {
        name for name, obj in vars(errors).items()
        if inspect.isclass(obj) and not name.startswith("_") and obj.__module__ == errors.__name__
    }
    assert public == set(ERROR_CLASSES)
    for name, (code, status) in ERROR_CLASSES.items():
        cls = getattr(errors, name)
        assert issubclass(cls, errors.OAuthError)
        assert (cls.error, cls.status_code) == (code, status), name
        assert isinstance(cls.description, str), name
        assert cls.description, name


def test_error_members() -> None:
    """What every error offers callers: its code, description, status, body, headers, detail."""
    error = errors.InvalidClientError("why", basic_attempted=True)
    assert error.detail == "why"
    assert error.basic_attempted is True
    assert set(error.body()) == {"error", "error_description"}
    assert set(error.headers()) == {"WWW-Authenticate"}
    assert {"error", "description", "status_code", "body", "headers"} <= set(dir(error))
