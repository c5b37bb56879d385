"""Provider presets and quirks for the device authorization grant (RFC 8628), the authorization
code grant with PKCE (RFC 7636, RFC 8252; browser_flow.py) and client credentials (RFC 6749 §4.4).

Providers with discovery (OpenID Connect Discovery 1.0, then RFC 8414) only need an issuer. Those
without usable discovery get preset endpoints. Every deviation from RFC 8628 / RFC 6749 that the
client tolerates is listed here with the evidence for it, so the flow itself stays provider-neutral.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote

from deviceflow.client.errors import ConfigurationError

__all__ = [
    "LOCAL_DEFAULT_ISSUER",
    "Provider",
    "ProviderKind",
    "Quirks",
    "preset_endpoints",
    "provider_for",
]

LOCAL_DEFAULT_ISSUER = "http://127.0.0.1:8000"


class ProviderKind(StrEnum):
    LOCAL = "local"
    ENTRA = "entra"
    GOOGLE = "google"
    GITHUB = "github"
    OKTA = "okta"
    AUTH0 = "auth0"
    KEYCLOAK = "keycloak"
    OIDC = "oidc"


@dataclass(frozen=True, slots=True)
class Quirks:
    """How one provider departs from the RFCs. The defaults are the RFC behaviour."""

    # Extra error codes that mean the person refused: maps the provider's code to the RFC code.
    error_aliases: tuple[tuple[str, str], ...] = ()
    # Scopes always added to the request (e.g. Entra's ``offline_access`` for a refresh token).
    always_scopes: tuple[str, ...] = ()
    # The token response's ``scope`` is comma separated instead of space separated.
    comma_separated_scope: bool = False
    # The provider never returns an ID token, so "openid" is not a default scope.
    issues_id_token: bool = True
    # The device authorization response carries a human message worth showing (Entra).
    shows_message: bool = False
    # Client authentication at the token endpoint: "client_secret_post" or "client_secret_basic".
    secret_auth_method: str = "client_secret_basic"
    # The revocation endpoint (RFC 7009) takes access tokens too; False: refresh tokens only.
    revokes_access_tokens: bool = True
    # The revocation endpoint answers 400 "invalid_token" for a token already expired or revoked,
    # where RFC 7009 §2.2 answers 200.
    invalid_token_is_revoked: bool = False
    # --- the authorization code flow (browser_flow.py) ---
    # The loopback redirect URI's host and path: RFC 8252 §7.3 and §8.3 recommend the IP literal
    # "http://127.0.0.1:{port}/{path}"; the port is always the one the listener got.
    loopback_host: str = "127.0.0.1"
    callback_path: str = "/callback"
    # The token request of the authorization code flow needs the client secret even for a
    # native app (the provider calls it "not treated as a secret").
    code_flow_needs_secret: bool = False


@dataclass(frozen=True, slots=True)
class Provider:
    kind: ProviderKind
    title: str
    uses_discovery: bool
    default_scopes: tuple[str, ...]
    needs_issuer: bool = False
    needs_tenant: bool = False
    quirks: Quirks = field(default_factory=Quirks)
    example_issuer: str = ""


@dataclass(frozen=True, slots=True)
class PresetEndpoints:
    issuer: str
    device_authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str | None = None
    authorization_endpoint: str | None = None


_PROVIDERS: dict[ProviderKind, Provider] = {
    ProviderKind.LOCAL: Provider(
        kind=ProviderKind.LOCAL,
        title="deviceflow's own server",
        uses_discovery=True,
        default_scopes=("openid", "profile", "offline_access"),
        example_issuer=LOCAL_DEFAULT_ISSUER,
    ),
    ProviderKind.ENTRA: Provider(
        kind=ProviderKind.ENTRA,
        title="Microsoft Entra ID",
        # Presets, not discovery: for the multi-tenant authorities ("common", "organizations",
        # "consumers") Entra's discovery document names the issuer as the template
        # "https://login.microsoftonline.com/{tenantid}/v2.0", which can never equal the
        # configured issuer (Microsoft identity platform docs, "OpenID Connect on the Microsoft
        # identity platform", section "Find your app's OpenID configuration document URI").
        uses_discovery=False,
        default_scopes=("openid", "profile", "offline_access"),
        needs_tenant=True,
        quirks=Quirks(
            # Entra's device code flow docs ("Expected errors" table) list
            # "authorization_declined" where RFC 8628 says "access_denied", and
            # "bad_verification_code" for an unknown device_code.
            error_aliases=(("authorization_declined", "access_denied"),),
            # Entra only returns a refresh token when "offline_access" is requested ("Microsoft
            # identity platform and the OAuth 2.0 device authorization grant flow": "Include
            # offline_access to get a refresh token").
            always_scopes=("offline_access",),
            # The device code response includes "message", "a human-readable string with
            # instructions for the user", localizable with ?mkt= (same docs, "Device
            # authorization response" table).
            shows_message=True,
            secret_auth_method="client_secret_post",
            # "Redirect URI (reply URL) outline and restrictions", section "Localhost
            # exceptions" (https://learn.microsoft.com/entra/identity-platform/reply-url): a
            # registered http://localhost redirect matches any port; MSAL's own loopback redirect
            # is "http://localhost:{port}" with no path, and its error text says "Configure
            # http://localhost or http://localhost:port ... during app registration".
            loopback_host="localhost",
            callback_path="",
        ),
    ),
    ProviderKind.GOOGLE: Provider(
        kind=ProviderKind.GOOGLE,
        title="Google",
        # Google's discovery document (accounts.google.com) does not advertise its device
        # endpoint, so discovery cannot find it ("OAuth 2.0 for TV and Limited-Input Device
        # Applications", step 1 posts to https://oauth2.googleapis.com/device/code).
        uses_discovery=False,
        default_scopes=("openid", "email", "profile"),
        quirks=Quirks(
            # Google's device docs send "client_secret" as a form parameter in the token request
            # ("Poll Google's authorization server", request parameters table).
            secret_auth_method="client_secret_post",
            # Google's revocation ("OAuth 2.0 for TV and Limited-Input Device Applications",
            # "Revoking a token") takes `token` as a form (or query) parameter and answers 200,
            # or 400 "along with an error code"; a token already revoked or expired gets
            # {"error": "invalid_token", "error_description": "Token expired or revoked"} (what
            # Google's sign-in samples' disconnect handlers meet). Revoking the refresh token
            # ends the whole grant there, so the access token's revocation right after it meets
            # exactly this answer: it means "nothing left to revoke", not a failure.
            invalid_token_is_revoked=True,
            # "OAuth 2.0 for iOS & Desktop Apps"
            # (https://developers.google.com/identity/protocols/oauth2/native-app), step 5
            # "Exchange authorization code for refresh and access tokens": client_secret is a
            # parameter of the token request; Google's overview
            # (https://developers.google.com/identity/protocols/oauth2#installed) says of
            # installed apps' secrets: "the client secret is obviously not treated as a secret".
            # The same page's "Loopback IP address" redirect is http://127.0.0.1:{port}: the
            # default loopback host and any path suit it.
            code_flow_needs_secret=True,
        ),
    ),
    ProviderKind.GITHUB: Provider(
        kind=ProviderKind.GITHUB,
        title="GitHub",
        # GitHub has no OAuth discovery document; endpoints are fixed in "Authorizing OAuth apps",
        # section "Device flow". Nor any RFC 7009 endpoint: a token is deleted with the REST API
        # ("Delete an app authorization", DELETE /applications/{client_id}/grant), which needs
        # Basic authentication with the app's client_id and client_secret, which a device-flow
        # CLI does not have. So logout can only forget GitHub tokens locally.
        uses_discovery=False,
        default_scopes=("read:user",),
        quirks=Quirks(
            # GitHub returns "scope" comma separated, e.g. "scope":"repo,gist" ("Authorizing OAuth
            # apps", response of step 3).
            comma_separated_scope=True,
            # GitHub is plain OAuth 2.0: no OpenID Connect, no ID token.
            issues_id_token=False,
            secret_auth_method="client_secret_post",
            # "Authorizing OAuth apps", web application flow step 2
            # (https://docs.github.com/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps):
            # client_secret is "Required" in POST /login/oauth/access_token, which answers
            # "access_token=...&scope=...&token_type=bearer" unless the Accept header asks for
            # JSON (every token request here sends Accept: application/json; json_object() reads
            # both). Section "Loopback redirect urls": the redirect_uri's port may differ from the
            # registered http://127.0.0.1/path callback, the path must match: register
            # http://127.0.0.1/callback. GitHub OAuth apps historically took no PKCE; the
            # code_challenge parameters are sent anyway (an unknown parameter is ignored, and
            # GitHub documents code_challenge since its 2025 PKCE support).
            code_flow_needs_secret=True,
            # The same page's "Troubleshooting authorization request errors" and "Troubleshooting
            # OAuth app access token request errors": GitHub's names for RFC 6749 §5.2's
            # invalid_grant (a bad, expired or reused code) and invalid_client.
            error_aliases=(
                ("bad_verification_code", "invalid_grant"),
                ("incorrect_client_credentials", "invalid_client"),
            ),
        ),
    ),
    ProviderKind.OKTA: Provider(
        kind=ProviderKind.OKTA,
        title="Okta",
        uses_discovery=True,
        default_scopes=("openid", "profile", "offline_access"),
        needs_issuer=True,
        example_issuer="https://example.okta.com/oauth2/default",
    ),
    ProviderKind.AUTH0: Provider(
        kind=ProviderKind.AUTH0,
        title="Auth0",
        uses_discovery=True,
        default_scopes=("openid", "profile", "offline_access"),
        needs_issuer=True,
        example_issuer="https://example.eu.auth0.com/",
        quirks=Quirks(
            # Auth0's /oauth/revoke (Authentication API, "Revoke Refresh Token"; "Revoke Refresh
            # Tokens") revokes refresh tokens only: its `token` is "The refresh token you want to
            # revoke". Its access tokens are self-contained JWTs that live until they expire.
            revokes_access_tokens=False,
        ),
    ),
    ProviderKind.KEYCLOAK: Provider(
        kind=ProviderKind.KEYCLOAK,
        title="Keycloak",
        uses_discovery=True,
        default_scopes=("openid", "profile", "offline_access"),
        needs_issuer=True,
        example_issuer="https://keycloak.example.com/realms/myrealm",
    ),
    ProviderKind.OIDC: Provider(
        kind=ProviderKind.OIDC,
        title="any OpenID Connect / OAuth 2.0 server",
        uses_discovery=True,
        default_scopes=("openid", "profile", "offline_access"),
        needs_issuer=True,
        example_issuer="https://id.example.com",
    ),
}


def provider_for(kind: ProviderKind | str) -> Provider:
    try:
        return _PROVIDERS[ProviderKind(kind)]
    except ValueError:
        choices = ", ".join(k.value for k in ProviderKind)
        raise ConfigurationError(f"Unknown provider '{kind}'; choose one of {choices}.") from None


def preset_endpoints(kind: ProviderKind, *, tenant_id: str | None) -> PresetEndpoints:
    """Fixed endpoints for providers whose discovery cannot be used."""
    if kind is ProviderKind.ENTRA:
        if not tenant_id:
            raise ConfigurationError(
                "An Entra profile needs a tenant ID (a GUID, a domain, or 'common')."
            )
        tenant = quote(tenant_id, safe="")
        base = f"https://login.microsoftonline.com/{tenant}"
        # v2.0 endpoints: ".../oauth2/v2.0/devicecode" and ".../oauth2/v2.0/token" (Microsoft
        # identity platform device code flow docs, "Device authorization request").
        return PresetEndpoints(
            issuer=f"{base}/v2.0",
            device_authorization_endpoint=f"{base}/oauth2/v2.0/devicecode",
            token_endpoint=f"{base}/oauth2/v2.0/token",
            # "Microsoft identity platform and OAuth 2.0 authorization code flow"
            # (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow).
            authorization_endpoint=f"{base}/oauth2/v2.0/authorize",
            # No RFC 7009 endpoint: Entra cannot revoke one refresh token. Its only revocation is
            # Microsoft Graph's "user: revokeSignInSessions" (every refresh token of the user,
            # every app, with a Graph permission such as User.RevokeSessions.All), far beyond a
            # logout; so logout forgets Entra tokens locally only.
        )
    if kind is ProviderKind.GOOGLE:
        return PresetEndpoints(
            issuer="https://accounts.google.com",
            device_authorization_endpoint="https://oauth2.googleapis.com/device/code",
            token_endpoint="https://oauth2.googleapis.com/token",
            # "Revoking a token" in Google's OAuth 2.0 docs.
            revocation_endpoint="https://oauth2.googleapis.com/revoke",
            # "OAuth 2.0 for iOS & Desktop Apps", step 2 "Send a request to Google's OAuth 2.0
            # server".
            authorization_endpoint="https://accounts.google.com/o/oauth2/v2/auth",
        )
    if kind is ProviderKind.GITHUB:
        return PresetEndpoints(
            issuer="https://github.com",
            device_authorization_endpoint="https://github.com/login/device/code",
            token_endpoint="https://github.com/login/oauth/access_token",
            # "Authorizing OAuth apps", web application flow step 1.
            authorization_endpoint="https://github.com/login/oauth/authorize",
        )
    raise ConfigurationError(f"The {kind.value} provider is configured by discovery, not presets.")
