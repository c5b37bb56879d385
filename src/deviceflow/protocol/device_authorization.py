"""The device authorization endpoint (RFC 8628 §3.1–§3.2)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from .codes import CodeHasher, CodeSource, format_user_code
from .errors import UnauthorizedClientError
from .models import (
    DEVICE_CODE_GRANT,
    Client,
    DeviceAuthorization,
    DevicePolicy,
    DeviceStatus,
    RequestOrigin,
    Timestamp,
)
from .proximity import NetworkFacts
from .scopes import parse_scope, resolve_scope


@dataclass(frozen=True, slots=True)
class DeviceAuthorizationRequest:
    scope: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class DeviceAuthorizationResponse:
    """RFC 8628 §3.2. ``interval`` is always sent so clients never have to guess."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int

    def body(self) -> dict[str, str | int]:
        return {
            "device_code": self.device_code,
            "user_code": self.user_code,
            "verification_uri": self.verification_uri,
            "verification_uri_complete": self.verification_uri_complete,
            "expires_in": self.expires_in,
            "interval": self.interval,
        }


def parse_request(params: Mapping[str, str]) -> DeviceAuthorizationRequest:
    return DeviceAuthorizationRequest(scope=parse_scope(params.get("scope")))


def authorize_device(
    request: DeviceAuthorizationRequest,
    client: Client,
    policy: DevicePolicy,
    origin: RequestOrigin,
    now: Timestamp,
    codes: CodeSource,
    hasher: CodeHasher,
    network: NetworkFacts | None = None,
) -> tuple[DeviceAuthorization, DeviceAuthorizationResponse]:
    """Start a device authorization session for an authenticated client.

    RFC 8628 §3.1: the client must be allowed the device grant (off unless granted, as Keycloak
    and GitHub do), and the scope must be one the client may ask, within its device-grant
    allow-list (RFC 10027 §6.1.9 "Limited Scopes"); the request must come from a network and
    country the client allows (``check_origin``). ``network`` is kept with the record for the
    proximity judgement at consent.
    """
    if DEVICE_CODE_GRANT not in client.grant_types:
        raise UnauthorizedClientError(f"client {client.client_id!r} lacks the device grant")
    check_origin(client, origin, network)
    allowed = client.scopes if client.device_scopes is None else (
        client.scopes & client.device_scopes)
    scope = resolve_scope(request.scope, allowed)
    expires_in = client.device_code_lifetime or policy.expires_in
    device_code = codes.device_code()
    user_code = codes.user_code()
    record = DeviceAuthorization(
        device_code_hash=hasher.device_code(device_code),
        user_code_hash=hasher.user_code(user_code),
        client_id=client.client_id,
        scope=scope,
        status=DeviceStatus.PENDING,
        created_at=now,
        expires_at=now + expires_in,
        interval=policy.interval,
        origin=origin,
        network=network,
    )
    shown = format_user_code(user_code)
    response = DeviceAuthorizationResponse(
        device_code=device_code,
        user_code=shown,
        verification_uri=policy.verification_uri,
        verification_uri_complete=f"{policy.verification_uri}?user_code={quote(shown)}",
        expires_in=expires_in,
        interval=policy.interval,
    )
    return record, response


def check_origin(client: Client, origin: RequestOrigin, network: NetworkFacts | None) -> None:
    """The client's allowed networks (CIDR) and countries for device authorization (RFC 10027
    §6.1.8 "Trusted Networks"). RFC 8628 §3.2 answers errors as RFC 6749 §5.2 does, whose
    ``unauthorized_client`` is "not authorized to use this authorization grant type": here,
    not from where it asked. An unknown country is not an allowed one (fail closed)."""
    if client.device_networks:
        try:
            ip = ipaddress.ip_address(origin.ip_address)
        except ValueError:
            ip = None
        if ip is not None and ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip is None or not any(
            ip.version == net.version and ip in net
            for net in (ipaddress.ip_network(c, strict=False) for c in client.device_networks)
        ):
            raise UnauthorizedClientError(
                "device authorization is not allowed from this network for this client")
    if client.device_countries:
        country = network.country if network is not None else None
        if country is None or country not in client.device_countries:
            raise UnauthorizedClientError(
                "device authorization is not allowed from this country for this client")
