"""The device authorization endpoint (RFC 8628 §3.1–§3.2): POST form only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..requests import origin, read_form
from ..responses import json_response


async def device_authorization(request: Request) -> Response:
    params = await read_form(request)
    response = await request.app.state.service.tokens.device_authorization(
        params, request.headers.get("authorization"), origin(request)
    )
    return json_response(response.body())


routes = [Route("/device_authorization", device_authorization, methods=["POST"])]
