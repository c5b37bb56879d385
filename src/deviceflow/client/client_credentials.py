"""The client credentials grant (RFC 6749 §4.4), sans-I/O: a confidential client asks for a token
for itself. There is no refresh token (§4.4.3: "A refresh token SHOULD NOT be included"), so an
expired token is simply asked for again.
"""

from __future__ import annotations

from deviceflow.client.errors import ConfigurationError
from deviceflow.client.flow import (
    ClientAuth,
    Clock,
    Flow,
    ServerMetadata,
    post_form,
    send_with_retry,
    success_object,
)
from deviceflow.client.providers import Quirks
from deviceflow.client.tokens import TokenSet, parse_token_response

__all__ = ["CLIENT_CREDENTIALS_GRANT_TYPE", "client_credentials", "obtain_client_token"]

CLIENT_CREDENTIALS_GRANT_TYPE = "client_credentials"


def client_credentials(
    metadata: ServerMetadata,
    auth: ClientAuth,
    scopes: tuple[str, ...],
    clock: Clock,
    *,
    quirks: Quirks | None = None,
    extra_params: tuple[tuple[str, str], ...] = (),
) -> Flow[TokenSet]:
    """RFC 6749 §4.4.2: grant_type=client_credentials and the optional scope, the client
    authenticating as §2.3.1 says (§4.4.2: "The client MUST authenticate"). ``extra_params``
    carries e.g. Auth0's ``audience``, which its token endpoint needs for this grant."""
    if auth.client_secret is None:
        raise ConfigurationError(
            "The client-credentials flow needs the client's secret: from the profile "
            "(--client-secret-stdin when creating it), DEVICEFLOW_CLIENT_SECRET, or "
            "--client-secret-stdin."
        )
    quirks = quirks or Quirks()
    fields = [("grant_type", CLIENT_CREDENTIALS_GRANT_TYPE)]
    if scopes:
        fields.append(("scope", " ".join(scopes)))
    fields.extend(extra_params)
    request = post_form(metadata.token_endpoint, fields, auth)
    response = yield from send_with_retry(request)
    data = success_object(response, metadata.token_endpoint, dict(quirks.error_aliases))
    token = parse_token_response(
        data,
        now=clock.time(),
        requested_scopes=scopes,
        comma_separated_scope=quirks.comma_separated_scope,
    )
    # §4.4.3: a refresh token is not expected; one sent anyway is not kept (asking again with
    # the client's own credentials is the way to renew), nor is an ID token: no person signed in.
    return TokenSet(
        access_token=token.access_token,
        token_type=token.token_type,
        expires_at=token.expires_at,
        scope=token.scope,
        issued_at=token.issued_at,
    )


def obtain_client_token(
    metadata: ServerMetadata,
    auth: ClientAuth,
    scopes: tuple[str, ...],
    clock: Clock,
    *,
    quirks: Quirks | None = None,
    extra_params: tuple[tuple[str, str], ...] = (),
) -> Flow[tuple[TokenSet, bool]]:
    """The shape of flow.obtain_token: the token, and True (a new grant: the record restarts)."""
    token = yield from client_credentials(
        metadata, auth, scopes, clock, quirks=quirks, extra_params=extra_params
    )
    return token, True
