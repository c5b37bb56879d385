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
    """JSON Web Key Set (RFC 7517 §5): public keys only, each with ``kid``; every key that is
    not retired, a rotated-in one before it signs.

    ``max-age`` is the key reload interval: a rotated-in key signs only two intervals after it
    was stored, so a cache that honours it has the new key before the first token carries it
    (docs/operator.md, "Signing keys")."""
    max_age = int(request.app.state.settings.signing_key_reload_interval)  # never above it
    return json_response(
        request.app.state.service.keyring.jwks,
        headers={"Cache-Control": f"public, max-age={max_age}"}, no_store=False,
    )


routes = [
    Route("/.well-known/openid-configuration", metadata, methods=["GET"]),
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
    Route("/jwks.json", jwks, methods=["GET"]),
]
