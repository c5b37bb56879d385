"""Parsing ``application/x-www-form-urlencoded`` request bodies the way RFC 6749 requires.

RFC 6749 §3.1/§3.2: "Parameters sent without a value MUST be treated as if they were omitted from
the request. The authorization server MUST ignore unrecognized request parameters. Request and
response parameters MUST NOT be included more than once."
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote_plus

from .errors import InvalidRequestError

MAX_BODY_BYTES = 64 * 1024
_MAX_FIELDS = 256
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class FormParams(Mapping[str, str]):
    """An immutable mapping of non-empty, non-repeated form parameters."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, str]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def require(self, name: str) -> str:
        value = self._data.get(name)
        if value is None:
            raise InvalidRequestError(f"missing parameter {name!r}")
        return value


def is_form_content_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == FORM_CONTENT_TYPE


def parse_form(body: bytes, content_type: str | None) -> FormParams:
    """Parse a token or device authorization request body, or raise ``invalid_request``."""
    if not is_form_content_type(content_type):
        raise InvalidRequestError("content type is not application/x-www-form-urlencoded")
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequestError("request body too large")
    try:
        pairs = _pairs(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError(f"undecodable form body: {type(exc).__name__}") from None
    data: dict[str, str] = {}
    for name, value in pairs:
        if not value:
            continue  # sent without a value: as if omitted, so it repeats nothing either
        if name in data:
            raise InvalidRequestError(f"parameter {name!r} repeated")
        data[name] = value
    return FormParams(data)


def _pairs(text: str) -> list[tuple[str, str]]:
    """``urllib.parse.parse_qsl(text, keep_blank_values=True, errors="strict")`` for the forms
    of this protocol, without its per-field overhead: fields are split on ``&`` only (the
    WHATWG form encoding), and a field is unquoted only when it holds ``+`` or ``%``."""
    fields = text.split("&")
    if len(fields) > _MAX_FIELDS:
        raise ValueError("too many fields")
    pairs = []
    for field in fields:
        if not field:
            continue
        name, _, value = field.partition("=")
        if "+" in name or "%" in name:
            name = unquote_plus(name, errors="strict")
        if "+" in value or "%" in value:
            value = unquote_plus(value, errors="strict")
        pairs.append((name, value))
    return pairs
