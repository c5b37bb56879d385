"""Endpoint discovery: OpenID Connect Discovery 1.0 §4, then RFC 8414 §3, sans-I/O; presets for
providers without usable discovery (see providers.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from deviceflow.client.errors import DiscoveryError, IssuerMismatchError
from deviceflow.client.flow import (
    Flow,
    HttpRequest,
    ServerMetadata,
    check_secure_url,
    json_object,
    send_with_retry,
)
from deviceflow.client.providers import ProviderKind, preset_endpoints, provider_for
from deviceflow.client.tokens import strip_control

__all__ = [
    "discover",
    "discovery_urls",
    "preset_metadata",
    "resolve_metadata",
    "uses_discovery",
]


# --- discovery -----------------------------------------------------------------------------


def discovery_urls(issuer: str) -> tuple[str, str]:
    """OIDC Discovery §4: issuer + "/.well-known/openid-configuration"; RFC 8414 §3: the
    well-known suffix is inserted between the host and the issuer's path."""
    trimmed = issuer.rstrip("/")
    parts = urlsplit(trimmed)
    oidc = f"{trimmed}/.well-known/openid-configuration"
    rfc8414 = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}"
    return oidc, rfc8414


def _same_issuer(configured: str, advertised: str) -> bool:
    # RFC 8414 §3.3 wants identical strings. We forgive only a trailing "/", because Auth0's
    # issuer is "https://TENANT.auth0.com/" (with the slash) and people type it without.
    return configured == advertised or configured.rstrip("/") == advertised.rstrip("/")


def _metadata_from(doc: Mapping[str, object], issuer: str, url: str) -> ServerMetadata:
    advertised = doc.get("issuer")
    if not isinstance(advertised, str) or not _same_issuer(issuer, advertised):
        raise IssuerMismatchError(issuer, strip_control(str(advertised))[:200])

    def endpoint(name: str, *, required: bool) -> str | None:
        value = doc.get(name)
        if value is None:
            if required:
                raise DiscoveryError(
                    f"The server at {issuer} has no token endpoint "
                    f"(its discovery document {url} has no '{name}')."
                )
            return None
        if not isinstance(value, str):
            raise DiscoveryError(f"The discovery document {url} has an invalid '{name}'.")
        return check_secure_url(value, what=f"'{name}' in the discovery document")

    def methods(name: str) -> tuple[str, ...]:
        value = doc.get(name)
        return tuple(m for m in value if isinstance(m, str)) if isinstance(value, list) else ()

    return ServerMetadata(
        issuer=advertised,
        token_endpoint=endpoint("token_endpoint", required=True) or "",
        # Each flow checks for its own endpoint when it starts (missing_endpoint): a server may
        # offer the authorization code flow or client credentials without the device flow.
        device_authorization_endpoint=endpoint("device_authorization_endpoint", required=False)
        or "",
        revocation_endpoint=endpoint("revocation_endpoint", required=False),
        jwks_uri=endpoint("jwks_uri", required=False),
        userinfo_endpoint=endpoint("userinfo_endpoint", required=False),
        token_endpoint_auth_methods_supported=methods("token_endpoint_auth_methods_supported"),
        # RFC 7662 §4 registers "introspection_endpoint" in RFC 8414's metadata.
        introspection_endpoint=endpoint("introspection_endpoint", required=False),
        revocation_endpoint_auth_methods_supported=methods(
            "revocation_endpoint_auth_methods_supported"
        ),
        introspection_endpoint_auth_methods_supported=methods(
            "introspection_endpoint_auth_methods_supported"
        ),
        authorization_endpoint=endpoint("authorization_endpoint", required=False),
        code_challenge_methods_supported=methods("code_challenge_methods_supported"),
        # RFC 9207 §3: only the JSON literal true means the server sends "iss".
        authorization_response_iss_parameter_supported=doc.get(
            "authorization_response_iss_parameter_supported"
        )
        is True,
    )


def discover(issuer: str) -> Flow[ServerMetadata]:
    """Find the endpoints: OpenID Connect Discovery first, then RFC 8414.

    RFC 8414 §3.3: "The "issuer" value returned MUST be identical to the authorization server's
    issuer identifier value into which the well-known URI string was inserted"; a document naming
    another issuer is refused (mix-up attacks, RFC 9207 §1).
    """
    check_secure_url(issuer, what="issuer")
    tried: list[str] = []
    for url in discovery_urls(issuer):
        request = HttpRequest("GET", url, (("Accept", "application/json"),))
        response = yield from send_with_retry(request, attempts=2, first_delay=0.5)
        tried.append(f"{url} (HTTP {response.status})")
        if response.status != 200:
            continue
        doc = json_object(response)
        if doc is None:
            tried[-1] = f"{url} (not JSON)"
            continue
        return _metadata_from(doc, issuer, url)
    raise DiscoveryError(
        f"No discovery document found for {issuer}; tried " + " and ".join(tried) + "."
    )




def preset_metadata(kind: ProviderKind, *, tenant_id: str | None) -> ServerMetadata:
    """Endpoints of a provider configured by presets (no network)."""
    preset = preset_endpoints(kind, tenant_id=tenant_id)
    return ServerMetadata(
        issuer=preset.issuer,
        token_endpoint=preset.token_endpoint,
        device_authorization_endpoint=preset.device_authorization_endpoint,
        revocation_endpoint=preset.revocation_endpoint,
        authorization_endpoint=preset.authorization_endpoint,
    )


def uses_discovery(kind: ProviderKind) -> bool:
    return provider_for(kind).uses_discovery


def resolve_metadata(
    kind: ProviderKind, issuer: str, *, tenant_id: str | None
) -> Flow[ServerMetadata]:
    """Preset endpoints, or discovery for the providers that have it."""
    if not uses_discovery(kind):
        return preset_metadata(kind, tenant_id=tenant_id)
    metadata = yield from discover(issuer)
    return metadata
