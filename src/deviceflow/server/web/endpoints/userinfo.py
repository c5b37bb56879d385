"""The OIDC UserInfo endpoint (OIDC Core §5.3) with a Bearer access token (RFC 6750 §2.1)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ....protocol.errors import InvalidTokenError
from ..responses import json_response


async def userinfo(request: Request) -> Response:
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        # RFC 6750 §3.1: a request without a token gets 401 and a challenge without error codes.
        return json_response(
            {"error": "invalid_token", "error_description": "A Bearer access token is required."},
            401, {"WWW-Authenticate": 'Bearer realm="deviceflow"'},
        )
    try:
        info = await request.app.state.service.tokens.userinfo(credentials.strip())
    except InvalidTokenError as exc:
        return json_response(exc.body(), exc.status_code, exc.headers())
    return json_response(info)


routes = [Route("/userinfo", userinfo, methods=["GET", "POST"])]
