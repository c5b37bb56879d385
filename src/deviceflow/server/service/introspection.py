"""Token introspection (RFC 7662 §2) for resource servers registered as confidential clients."""

from __future__ import annotations

from ...protocol import client_auth, introspection, revocation
from ...protocol.errors import InvalidClientError
from ...protocol.grants import client_credentials
from ...protocol.models import RefreshToken
from ...protocol.params import FormParams
from ...protocol.revocation import TokenKind
from ...protocol.tokens import AccessToken
from .context import ServiceContext
from .revocation import RevocationService


class IntrospectionService:
    def __init__(self, ctx: ServiceContext, revocation_service: RevocationService) -> None:
        self.ctx = ctx
        self._lookup = revocation_service

    async def introspect(self, params: FormParams, authorization: str | None
                         ) -> dict[str, object]:
        """RFC 7662 §2.1: "the endpoint MUST also require some form of authorization"; here the
        caller authenticates as a confidential client. §2.3: invalid credentials are answered
        401; so is a public client, which has none. The token is looked up as the hinted kind
        first, then as the other; whatever is not an active token of ours is ``active: false``
        and nothing else (§2.2)."""
        try:
            credentials = client_auth.parse_client_credentials(authorization, params)
            client = client_auth.authenticate_client(
                credentials, await self.ctx.client(credentials.client_id))
        except InvalidClientError as exc:
            # Always 401 here (§2.3), so always with the Basic challenge RFC 9110 §15.5.2 needs.
            raise InvalidClientError(exc.detail, basic_attempted=True) from None
        if client.is_public:
            raise InvalidClientError("a public client may not introspect", basic_attempted=True)
        request = revocation.parse_token_request(params)
        for kind in revocation.lookup_order(request.hint):
            if kind is TokenKind.ACCESS_TOKEN:
                access = self._lookup.access_token(request.token)
                if access is not None:
                    return await self._access_token(access)
            else:
                refresh = await self._lookup.refresh_token(request.token)
                if refresh is not None:
                    return await self._refresh_token(refresh)
        return introspection.inactive()

    async def _access_token(self, token: AccessToken) -> dict[str, object]:
        ctx = self.ctx
        if not token.active(ctx.clock()) or await ctx.denylist.denied(token.jti, token.family_id):
            return introspection.inactive()
        acting = client_credentials.client_id_of(token.sub)
        if acting is not None:
            # A client's own token (RFC 6749 §4.4): active while that client is registered.
            if acting != token.client_id or await ctx.client(acting) is None:
                return introspection.inactive()
            return introspection.access_token_response(token, None)
        async with ctx.store.unit_of_work(read_only=True) as uow:
            user = await uow.users.get(token.sub)
        if user is None:
            return introspection.inactive()
        return introspection.access_token_response(token, user)

    async def _refresh_token(self, token: RefreshToken) -> dict[str, object]:
        ctx = self.ctx
        if not introspection.refresh_token_active(token, ctx.clock()):
            return introspection.inactive()
        async with ctx.store.unit_of_work(read_only=True) as uow:
            user = await uow.users.get(token.user_id)
        if user is None:
            return introspection.inactive()
        return introspection.refresh_token_response(token, user, ctx.policy.token.issuer)


__all__ = ["IntrospectionService"]
