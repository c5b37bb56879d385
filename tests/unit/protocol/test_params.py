"""Form bodies of the token and device authorization endpoints (RFC 6749 §3.1, §3.2)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deviceflow.protocol.errors import InvalidRequestError
from deviceflow.protocol.params import (
    FORM_CONTENT_TYPE,
    MAX_BODY_BYTES,
    FormParams,
    _pairs,
    is_form_content_type,
    parse_form,
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", {}),
        (b"a=1&b=2", {"a": "1", "b": "2"}),
        (b"scope=openid+profile", {"scope": "openid profile"}),
        (b"scope=openid%20profile", {"scope": "openid profile"}),
        (b"name=%C3%A9t%C3%A9", {"name": "été"}),
        (b"client_id=a%26b%3Dc", {"client_id": "a&b=c"}),
        # RFC 6749 §3.1: "Parameters sent without a value MUST be treated as if they were
        # omitted from the request."
        (b"client_secret=&client_id=tv", {"client_id": "tv"}),
        (b"client_secret&client_id=tv", {"client_id": "tv"}),
        # ... so an empty one beside a real one is not a repetition.
        (b"scope=&scope=openid", {"scope": "openid"}),
        # Unknown parameters are kept by the parser and ignored by each endpoint.
        (b"client_id=tv&whatever=1", {"client_id": "tv", "whatever": "1"}),
        (b"a=1;b=2", {"a": "1;b=2"}),  # ";" is no separator in x-www-form-urlencoded
    ],
    ids=["empty", "two", "plus-is-space", "percent-space", "utf8", "escaped-delimiters",
         "empty-is-absent", "bare-name-is-absent", "empty-then-value", "unknown-kept",
         "semicolon-not-separator"],
)
def test_parse_form_accepts(body: bytes, expected: dict[str, str]) -> None:
    assert dict(parse_form(body, FORM_CONTENT_TYPE)) == expected


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"a=1&a=2", FORM_CONTENT_TYPE),
        (b"a=1&a=1", FORM_CONTENT_TYPE),
        (b"grant_type=x&b=1&grant_type=x", FORM_CONTENT_TYPE),
        (b"a=\xff", FORM_CONTENT_TYPE),
        (b"a=%FF", FORM_CONTENT_TYPE),
        (b"a=%C3", FORM_CONTENT_TYPE),
        (b"\xfe\xff\x00a", FORM_CONTENT_TYPE),
        (b"a=1", None),
        (b"a=1", ""),
        (b"a=1", "application/json"),
        (b"a=1", "text/plain"),
        (b"a=1", "multipart/form-data; boundary=x"),
        (b"a=1", "application/x-www-form-urlencodedx"),
        (b"a=" + b"x" * MAX_BODY_BYTES, FORM_CONTENT_TYPE),
        (b"&".join(b"p%d=1" % i for i in range(300)), FORM_CONTENT_TYPE),
    ],
    ids=["repeated", "repeated-same-value", "repeated-apart", "raw-non-utf8",
         "escaped-non-utf8", "truncated-utf8", "utf16", "no-content-type", "empty-content-type",
         "json", "text", "multipart", "lookalike-type", "over-64k", "too-many-fields"],
)
def test_parse_form_refuses_with_invalid_request(body: bytes, content_type: str | None) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_form(body, content_type)
    assert info.value.body()["error"] == "invalid_request"


def test_64_kib_is_the_exact_limit() -> None:
    assert MAX_BODY_BYTES == 64 * 1024
    at_limit = b"a=" + b"x" * (MAX_BODY_BYTES - 2)
    assert len(parse_form(at_limit, FORM_CONTENT_TYPE)["a"]) == MAX_BODY_BYTES - 2
    with pytest.raises(InvalidRequestError):
        parse_form(at_limit + b"x", FORM_CONTENT_TYPE)


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("application/x-www-form-urlencoded", True),
        ("application/x-www-form-urlencoded; charset=UTF-8", True),
        ("Application/X-WWW-Form-Urlencoded", True),
        ("  application/x-www-form-urlencoded ;charset=utf-8", True),
        (None, False),
        ("", False),
        ("application/json", False),
        ("application/x-www-form-urlencoded-x", False),
    ],
    ids=["plain", "charset", "case", "spaces", "none", "empty", "json", "lookalike"],
)
def test_is_form_content_type(content_type: str | None, accepted: bool) -> None:
    assert is_form_content_type(content_type) is accepted


def test_require_names_a_missing_parameter_as_invalid_request() -> None:
    params = parse_form(b"grant_type=&device_code=abc", FORM_CONTENT_TYPE)
    assert params.require("device_code") == "abc"
    with pytest.raises(InvalidRequestError):
        params.require("grant_type")
    with pytest.raises(InvalidRequestError):
        params.require("nothing")


def test_form_params_is_a_read_only_mapping() -> None:
    params = FormParams({"a": "1"})
    assert len(params) == 1
    assert list(params) == ["a"]
    assert params["a"] == "1"
    assert params.get("b") is None
    with pytest.raises(TypeError):
        params["b"] = "2"  # type: ignore[index]


_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)


@given(st.dictionaries(_text, _text, max_size=10))
def test_any_urlencoded_form_round_trips(form: dict[str, str]) -> None:
    body = urlencode(form).encode()
    assert dict(parse_form(body, FORM_CONTENT_TYPE)) == form


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_invalid_request(body: bytes) -> None:
    try:
        params = parse_form(body, FORM_CONTENT_TYPE)
    except InvalidRequestError:
        return
    assert all(isinstance(k, str) and v for k, v in params.items())


@given(st.text(alphabet="ab=&%+;2F4E1x\u00e9", max_size=24))
def test_fields_split_exactly_as_parse_qsl_does(text: str) -> None:
    """The hand-written split is ``parse_qsl(keep_blank_values=True, errors="strict")`` for
    every input, refusals included; only its per-field cost differs."""
    try:
        expected: object = parse_qsl(text, keep_blank_values=True, errors="strict",
                                     max_num_fields=256)
    except ValueError as exc:  # UnicodeDecodeError is one
        expected = type(exc)
    try:
        got: object = _pairs(text)
    except ValueError as exc:
        got = type(exc)
    assert got == expected


def test_more_than_256_fields_are_refused() -> None:
    assert len(_pairs("&".join(["a=1"] * 256))) == 256
    with pytest.raises(ValueError, match="too many fields"):
        _pairs("&".join(["a=1"] * 257))
