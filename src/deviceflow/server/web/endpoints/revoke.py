"""The revocation endpoint (RFC 7009 §2): POST form, client authentication as at the token
endpoint, 200 with an empty body whether or not the token was known (§2.2)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..requests import read_form
from ..responses import NO_STORE


async def revoke(request: Request) -> Response:
    params = await read_form(request)
    revoked = await request.app.state.service.revocation.revoke(
        params, request.headers.get("authorization"))
    if revoked is not None:
        request.app.state.metrics.revocations.inc(revoked.value)
    # §2.2: "the content of the response body is ignored by the client"; no-store, as for
    # every answer about a token.
    return Response(b"", 200, headers=NO_STORE)


routes = [Route("/revoke", revoke, methods=["POST"])]
