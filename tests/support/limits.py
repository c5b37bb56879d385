"""Rate limits raised for tests, in one place.

Every test talks from one address (127.0.0.1 or a fixed ASGI client) to servers that live for
a module or a session, so the shipped budgets (RFC 8628 §5.1) would trip on requests no test
means as guesses. The limits themselves are tested against their own apps, which set the budget
under test back to something small: ``generous_limits(limit_code_per_ip="4/hour")``.
"""

from __future__ import annotations

from collections.abc import Mapping

GENEROUS_LIMITS: Mapping[str, str] = {
    "limit_code_per_session": "1000/minute",
    "limit_code_per_ip": "10000/hour",
    "limit_code_global": "100000/hour",
    "limit_code_per_account": "10000/hour",
    "limit_login_per_account": "1000/minute",
    "limit_login_per_ip": "10000/hour",
    "limit_device_authorization_per_ip": "100000/minute",
    "limit_device_codes_per_client": "1000000",
}
"""Budgets no test meets by accident, as ``ServerSettings`` fields (or, upper-cased with
``DEVICEFLOW_``, as environment variables)."""


def generous_limits(**overrides: object) -> dict[str, object]:
    """``GENEROUS_LIMITS`` with ``overrides`` (the budgets a test measures) in their place, as
    keyword arguments for ``ServerSettings``. An override that is not a limit setting is a
    mistake in the test, so it is refused rather than passed on."""
    unknown = set(overrides) - set(GENEROUS_LIMITS)
    if unknown:
        raise KeyError(f"not a limit setting: {', '.join(sorted(unknown))}")
    return {**GENEROUS_LIMITS, **overrides}
