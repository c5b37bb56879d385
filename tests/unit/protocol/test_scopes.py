"""Scopes (RFC 6749 §3.3): parsing, the client's allowance, and narrowing on refresh (§6)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deviceflow.protocol.errors import InvalidRequestError, InvalidScopeError, OAuthError
from deviceflow.protocol.scopes import (
    SCOPE_DESCRIPTIONS,
    STANDARD_SCOPES,
    describe_scope,
    narrow_scope,
    parse_scope,
    resolve_scope,
)

ALLOWED = frozenset({"openid", "profile", "offline_access"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("openid", ("openid",)),
        ("openid profile", ("openid", "profile")),
        ("profile openid", ("profile", "openid")),
        ("openid  profile ", ("openid", "profile")),
        ("openid openid profile", ("openid", "profile")),
        ("urn:example:read api://x/.default", ("urn:example:read", "api://x/.default")),
        ("!#[]~", ("!#[]~",)),
    ],
    ids=["absent", "one", "two", "order-kept", "extra-spaces", "duplicates", "uri-like",
         "edge-characters"],
)
def test_parse_scope(raw: str | None, expected: tuple[str, ...] | None) -> None:
    assert parse_scope(raw) == expected


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ('open"id', InvalidScopeError),
        ("open\\id", InvalidScopeError),
        ("openid\tprofile", InvalidScopeError),
        ("ópenid", InvalidScopeError),
        ("openid\x7f", InvalidScopeError),
        (" ", InvalidRequestError),
        ("   ", InvalidRequestError),
    ],
    ids=["dquote", "backslash", "tab", "non-ascii", "del", "only-space", "only-spaces"],
)
def test_parse_scope_refuses(raw: str, error: type[OAuthError]) -> None:
    with pytest.raises(error):
        parse_scope(raw)


_token = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"\\'),
    min_size=1, max_size=12,
)


@given(st.lists(_token, max_size=8).filter(bool))
def test_any_valid_scope_string_parses_to_its_unique_tokens(tokens: list[str]) -> None:
    assert parse_scope(" ".join(tokens)) == tuple(dict.fromkeys(tokens))


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (None, ("offline_access", "openid", "profile")),
        (("openid",), ("openid",)),
        (("profile", "openid"), ("profile", "openid")),
    ],
    ids=["default-is-all-allowed", "subset", "order-kept"],
)
def test_resolve_scope(requested: tuple[str, ...] | None, expected: tuple[str, ...]) -> None:
    assert resolve_scope(requested, ALLOWED) == expected


@pytest.mark.parametrize(
    "requested", [("admin",), ("openid", "admin")], ids=["unknown", "one-of-two-unknown"]
)
def test_resolve_scope_refuses_what_the_client_may_not_ask(requested: tuple[str, ...]) -> None:
    with pytest.raises(InvalidScopeError):
        resolve_scope(requested, ALLOWED)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (None, ("openid", "profile")),
        (("openid",), ("openid",)),
        (("profile", "openid"), ("profile", "openid")),
    ],
    ids=["omitted-is-original", "narrower", "same"],
)
def test_narrow_scope(requested: tuple[str, ...] | None, expected: tuple[str, ...]) -> None:
    assert narrow_scope(requested, ("openid", "profile")) == expected


@pytest.mark.parametrize(
    "requested", [("offline_access",), ("openid", "profile", "offline_access")],
    ids=["other", "wider"],
)
def test_narrow_scope_refuses_anything_not_originally_granted(
    requested: tuple[str, ...],
) -> None:
    with pytest.raises(InvalidScopeError):
        narrow_scope(requested, ("openid", "profile"))


@given(st.lists(st.sampled_from(sorted(ALLOWED)), unique=True),
       st.lists(st.sampled_from(sorted(ALLOWED)), unique=True))
def test_narrowed_scope_is_never_wider_than_the_original(
    original: list[str], requested: list[str]
) -> None:
    try:
        narrowed = narrow_scope(tuple(requested), tuple(original))
    except InvalidScopeError:
        assert not set(requested) <= set(original)
    else:
        assert set(narrowed) <= set(original)


@pytest.mark.parametrize("scope", STANDARD_SCOPES)
def test_standard_scopes_have_plain_descriptions(scope: str) -> None:
    assert describe_scope(scope) == SCOPE_DESCRIPTIONS[scope]


def test_unknown_scope_is_described_by_name() -> None:
    assert "calendar.read" in describe_scope("calendar.read")
