"""The token endpoint (RFC 6749 §3.2, RFC 8628 §3.4): POST form only, every grant by registry."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ....protocol.errors import OAuthError
from ....protocol.models import DEVICE_CODE_GRANT
from ..requests import read_form
from ..responses import json_response, oauth_error_response

SUCCESS = "success"
"""The ``answer`` label of a poll that got tokens (the others are RFC 8628 §3.5 error codes)."""


async def token(request: Request) -> Response:
    params = await read_form(request)
    grant_type = params.get("grant_type")
    metrics = request.app.state.metrics
    try:
        issued = await request.app.state.service.tokens.token(
            params, request.headers.get("authorization")
        )
    except OAuthError as exc:  # a malformed or unauthorized request: counted, then answered
        if grant_type == DEVICE_CODE_GRANT:
            metrics.polls.inc(exc.error)
        raise
    if isinstance(issued, OAuthError):
        if grant_type == DEVICE_CODE_GRANT:
            metrics.polls.inc(issued.error)
        return oauth_error_response(issued)
    if grant_type == DEVICE_CODE_GRANT:
        metrics.polls.inc(SUCCESS)
    # Only a grant type the server offers gets this far: a small fixed set of label values.
    metrics.tokens_issued.inc(str(grant_type))
    return json_response(issued.body())


routes = [Route("/token", token, methods=["POST"])]
