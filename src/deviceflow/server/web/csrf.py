"""CSRF protection for the verification pages' forms (RFC 8628 §5.4, OWASP synchronizer token).

Every form carries a per-session random token in a hidden field; a POST is acted on only when the
submitted token equals the one in the signed session cookie. A cross-site page can make a browser
post a form, but it cannot read the token, so it cannot make anyone enter, approve or deny a code.

The check runs before any service call: a forged or stale form consumes nothing and counts nothing
against the brute-force budgets (RFC 8628 §5.1).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import MutableMapping
from typing import Any

SESSION_KEY = "csrf"
"""Where the token lives in the Starlette session."""

FIELD = "csrf_token"
"""The hidden form field's name."""

_TOKEN_BYTES = 32


def token(session: MutableMapping[str, Any]) -> str:
    """This session's token, created on first use."""
    current = session.get(SESSION_KEY)
    if isinstance(current, str) and current:
        return current
    return rotate(session)


def rotate(session: MutableMapping[str, Any]) -> str:
    """A fresh token. Called at sign-in so a token seen before authentication is worthless after
    it (the login-CSRF and session-fixation advice of OWASP)."""
    fresh = secrets.token_urlsafe(_TOKEN_BYTES)
    session[SESSION_KEY] = fresh
    return fresh


def is_valid(session: MutableMapping[str, Any], submitted: str | None) -> bool:
    """True only when the session has a token and ``submitted`` equals it, compared in constant
    time (``hmac.compare_digest``) so the comparison leaks no prefix through timing."""
    expected = session.get(SESSION_KEY)
    if not isinstance(expected, str) or not expected or not submitted:
        return False
    # Bytes, not str: compare_digest refuses non-ASCII str, and a submitted field can hold anything.
    return hmac.compare_digest(expected.encode(), submitted.encode())
