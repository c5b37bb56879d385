"""The introspection endpoint (RFC 7662 §2): POST form from an authenticated confidential client,
a JSON answer (§2.2), never cached: it describes a token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..requests import read_form
from ..responses import json_response


async def introspect(request: Request) -> Response:
    params = await read_form(request)
    body = await request.app.state.service.introspection.introspect(
        params, request.headers.get("authorization"))
    return json_response(body)


routes = [Route("/introspect", introspect, methods=["POST"])]
