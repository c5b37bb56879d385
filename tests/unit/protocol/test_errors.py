"""OAuth errors as data (RFC 6749 §5.2, RFC 8628 §3.5, RFC 6750 §3.1): one class per code, a
fixed public description, a status, headers, and a private detail that is never sent."""

from __future__ import annotations

import inspect
import re

import pytest

from deviceflow.protocol import errors
from deviceflow.protocol.errors import (
    AccessDeniedError,
    AuthorizationPendingError,
    ExpiredTokenError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTokenError,
    OAuthError,
    ServerError,
    SlowDownError,
    TemporarilyUnavailableError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
    UnsupportedTokenTypeError,
)

TABLE = [
    (InvalidRequestError, "invalid_request", 400),
    (InvalidClientError, "invalid_client", 401),
    (InvalidGrantError, "invalid_grant", 400),
    (UnauthorizedClientError, "unauthorized_client", 400),
    (UnsupportedGrantTypeError, "unsupported_grant_type", 400),
    (InvalidScopeError, "invalid_scope", 400),
    (AuthorizationPendingError, "authorization_pending", 400),
    (SlowDownError, "slow_down", 400),
    (AccessDeniedError, "access_denied", 400),
    (ExpiredTokenError, "expired_token", 400),
    (InvalidTokenError, "invalid_token", 401),
    (UnsupportedTokenTypeError, "unsupported_token_type", 400),
    (ServerError, "server_error", 500),
    (TemporarilyUnavailableError, "temporarily_unavailable", 503),
]
IDS = [code for _, code, _ in TABLE]
SECRET_DETAIL = "device code dc-SECRET-123 for user WDJB-MJHT"


def _camel(code: str) -> str:
    name = "".join(part.capitalize() for part in code.split("_"))
    return name if name.endswith("Error") else name + "Error"  # server_error → ServerError


@pytest.mark.parametrize(("cls", "code", "status"), TABLE, ids=IDS)
def test_each_class_is_its_rfc_code(cls: type[OAuthError], code: str, status: int) -> None:
    assert issubclass(cls, OAuthError)
    assert cls.error == code
    assert cls.status_code == status
    assert cls.__name__ == _camel(code)  # STYLE.md: the RFC code in CamelCase + Error
    assert cls.__doc__
    assert "RFC" in cls.__doc__


@pytest.mark.parametrize(("cls", "code", "status"), TABLE, ids=IDS)
def test_body_is_error_and_fixed_description_only(
    cls: type[OAuthError], code: str, status: int
) -> None:
    error = cls(SECRET_DETAIL)
    assert error.body() == {"error": code, "error_description": cls.description}
    assert cls(SECRET_DETAIL).body() == cls().body()  # the description never varies
    # RFC 6749 §5.2: error_description is ASCII without '"' and '\'.
    assert re.fullmatch(r"[\x20\x21\x23-\x5b\x5d-\x7e]+", cls.description)
    # The private detail is logged, never sent.
    assert error.detail == SECRET_DETAIL
    assert SECRET_DETAIL not in repr(error.body()) + repr(error.headers())


def test_every_error_class_is_in_the_table() -> None:
    defined = {
        obj for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, OAuthError) and obj is not OAuthError
    }
    assert defined == {cls for cls, _, _ in TABLE}
    assert len({code for _, code, _ in TABLE}) == len(TABLE)


@pytest.mark.parametrize(("cls", "code", "status"), TABLE, ids=IDS)
def test_only_401s_carry_a_challenge(cls: type[OAuthError], code: str, status: int) -> None:
    if status != 401:
        assert cls().headers() == {}


@pytest.mark.parametrize(
    ("basic_attempted", "headers"),
    [(True, {"WWW-Authenticate": 'Basic realm="deviceflow", charset="UTF-8"'}), (False, {})],
    ids=["basic-tried", "no-basic"],
)
def test_invalid_client_challenges_only_when_basic_was_tried(
    basic_attempted: bool, headers: dict[str, str]
) -> None:
    assert InvalidClientError("x", basic_attempted=basic_attempted).headers() == headers


def test_invalid_token_has_a_bearer_challenge() -> None:
    challenge = InvalidTokenError("expired").headers()["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert "expired" not in challenge.replace("has expired", "")


def test_detail_defaults_to_the_code() -> None:
    assert str(SlowDownError()) == "slow_down"
    assert SlowDownError().detail == ""


@pytest.mark.parametrize(
    ("basic", "status", "challenged"), [(True, 401, True), (False, 400, False)],
    ids=["basic-tried", "no-basic"],
)
def test_invalid_client_challenges_only_after_basic(
    basic: bool, status: int, challenged: bool
) -> None:
    """RFC 6749 §5.2: 401 + WWW-Authenticate after Basic; else 400 (RFC 9110 §15.5.2: no 401
    without a challenge)."""
    error = InvalidClientError("x", basic_attempted=basic)
    assert error.status_code == status
    assert ("WWW-Authenticate" in error.headers()) is challenged


@pytest.mark.parametrize(
    ("retry_after", "status", "headers"),
    [(None, 503, {}), (42, 429, {"Retry-After": "42"}), (0, 429, {"Retry-After": "1"})],
    ids=["outage", "rate-limited", "never-zero"],
)
def test_temporarily_unavailable_answers_a_rate_limit_with_429(
    retry_after: int | None, status: int, headers: dict[str, str]
) -> None:
    """A spent rate limit: the registered code, 429 and Retry-After (RFC 6585 §4); the body is
    the same fixed one as an outage's."""
    error = TemporarilyUnavailableError("budget spent for 192.0.2.1", retry_after=retry_after)
    assert error.status_code == status
    assert error.headers() == headers
    assert error.body() == TemporarilyUnavailableError().body()
