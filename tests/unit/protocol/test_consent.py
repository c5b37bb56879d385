"""The remembered-consent rule (``protocol/consent.py``): which requests a consent covers, and
which scopes are new."""

from __future__ import annotations

from deviceflow.protocol.consent import Consent, covers, new_scopes

GRANTED = Consent("u1", "cli", frozenset({"openid", "profile"}), 10.0, 20.0)


def test_nothing_remembered_covers_nothing_and_everything_is_new() -> None:
    assert covers(None, ()) is False
    assert covers(None, ("openid",)) is False
    assert new_scopes(None, ("openid", "email", "openid")) == ("openid", "email")


def test_a_request_within_the_grant_is_covered() -> None:
    assert covers(GRANTED, ("openid",)) is True
    assert covers(GRANTED, ("profile", "openid")) is True
    assert covers(GRANTED, ()) is True  # a client asking for no scope, approved before
    assert new_scopes(GRANTED, ("openid", "profile")) == ()


def test_asking_for_more_is_not_covered_and_names_the_new_scopes_in_order() -> None:
    requested = ("offline_access", "openid", "email")
    assert covers(GRANTED, requested) is False
    assert new_scopes(GRANTED, requested) == ("offline_access", "email")
