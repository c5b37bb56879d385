"""Turning HTTP requests into typed input: bounded body reads and the request origin."""

from __future__ import annotations

from starlette.requests import Request

from ...protocol.errors import InvalidRequestError
from ...protocol.models import RequestOrigin
from ...protocol.params import MAX_BODY_BYTES, FormParams, is_form_content_type, parse_form

MAX_USER_AGENT = 512


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read at most ``limit`` bytes; stop reading (and refuse) as soon as the body is larger, so
    a huge upload costs us no memory."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise InvalidRequestError("request body too large or bad Content-Length")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidRequestError("request body too large")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request) -> FormParams:
    content_type = request.headers.get("content-type")
    if not is_form_content_type(content_type):
        raise InvalidRequestError("content type is not application/x-www-form-urlencoded")
    return parse_form(await read_body(request), content_type)


def client_ip(request: Request) -> str:
    """The peer address; uvicorn's proxy-headers support has already replaced it with the
    X-Forwarded-For address when, and only when, the peer is a trusted proxy."""
    return request.client.host if request.client else "unknown"


def origin(request: Request) -> RequestOrigin:
    user_agent = request.headers.get("user-agent", "")[:MAX_USER_AGENT]
    return RequestOrigin(ip_address=client_ip(request), user_agent=user_agent)
