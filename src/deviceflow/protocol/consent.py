"""Remembered consent (issue 11: "Consent: approve permissions (first time only)"): which scopes
a person has granted a client, and what a new request asks beyond them. Pure: no I/O.

Remembering consent changes what the consent page shows, never whether it is shown: RFC 8628
§5.4 asks the person to confirm every device ("the user should be asked to confirm the
device"), so a request within the granted scopes gets a short confirmation (client, code,
where and when, risk, Approve / Deny) instead of the full permissions list, and one asking for
more gets the full list with the new scopes marked."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .models import Timestamp


@dataclass(frozen=True, slots=True)
class Consent:
    """What one person granted one client, summed over their approvals."""

    user_id: str
    client_id: str
    scopes: frozenset[str]
    granted_at: Timestamp
    """The first approval of this client by this person (the consent began then)."""
    updated_at: Timestamp
    """The latest approval that added a scope (equal to ``granted_at`` until one did)."""


def new_scopes(consent: Consent | None, requested: Iterable[str]) -> tuple[str, ...]:
    """The requested scopes the person has not granted this client, in request order; every one
    of them when nothing is remembered."""
    granted = consent.scopes if consent is not None else frozenset()
    return tuple(s for s in dict.fromkeys(requested) if s not in granted)


def covers(consent: Consent | None, requested: Iterable[str]) -> bool:
    """True when a remembered consent grants everything ``requested`` asks for: the request
    may then be confirmed with the short page."""
    return consent is not None and not new_scopes(consent, requested)


__all__ = ["Consent", "covers", "new_scopes"]
