"""Authorization server metadata (RFC 8414 §3) and OpenID Provider metadata (OIDC Discovery §4)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..responses import json_response


async def metadata(request: Request) -> Response:
    # Public and identical for everyone: cacheable for a short time (RFC 8414 §3.2 allows it).
    return json_response(
        request.app.state.metadata, headers={"Cache-Control": "public, max-age=300"},
        no_store=False,
    )


async def jwks(request: Request) -> Response:
    """JSON Web Key Set (RFC 7517 §5): public keys only, each with ``kid``."""
    return json_response(
        request.app.state.service.keyring.jwks,
        headers={"Cache-Control": "public, max-age=300"}, no_store=False,
    )


routes = [
    Route("/.well-known/openid-configuration", metadata, methods=["GET"]),
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
    Route("/jwks.json", jwks, methods=["GET"]),
]
