"""The token endpoint (RFC 6749 §3.2, RFC 8628 §3.4): POST form only, every grant by registry."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ....protocol.errors import OAuthError
from ..requests import read_form
from ..responses import json_response, oauth_error_response


async def token(request: Request) -> Response:
    params = await read_form(request)
    issued = await request.app.state.service.tokens.token(
        params, request.headers.get("authorization")
    )
    if isinstance(issued, OAuthError):
        return oauth_error_response(issued)
    return json_response(issued.body())


routes = [Route("/token", token, methods=["POST"])]
