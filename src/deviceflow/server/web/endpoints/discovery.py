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


RFC8414_WELL_KNOWN = "/.well-known/oauth-authorization-server"

routes = [
    # OIDC Discovery §4: the issuer with "/.well-known/openid-configuration" appended.
    Route("/.well-known/openid-configuration", metadata, methods=["GET"]),
    # RFC 8414 §3.1 for an issuer without a path. Under an issuer with a path it is kept as
    # well: clients that append the suffix to the issuer (as for OIDC) find it, and a proxy that
    # strips the issuer's path has this to map the host-root location below to.
    Route(RFC8414_WELL_KNOWN, metadata, methods=["GET"]),
    Route("/jwks.json", jwks, methods=["GET"]),
]


def path_issuer_routes(issuer_path: str) -> list[Route]:
    """RFC 8414 §3.1: for an issuer with a path, the well-known suffix goes between the host
    and the path (``/.well-known/oauth-authorization-server/tenant``): at the host's root,
    outside the issuer's path."""
    return [Route(RFC8414_WELL_KNOWN + issuer_path, metadata, methods=["GET"])]
