"""The per-client device-flow options of ``deviceflow client add`` and ``update``
(docs/operator.md, "Per-client device-flow rules"; RFC 10027 §6.1): the proximity policy,
allowed networks and countries for device authorization, the device grant's scope allow-list,
and shorter token lifetimes for device-grant logins. Bad input is one sentence and exit 2."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

POLICIES = ("off", "report", "warn", "enforce", "default")
ANY = "any"
"""The value that removes a list rule: ``--device-network any``."""
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_MIN_LIFETIME = 60


def options(function: F) -> F:
    """Add the rule options to a command (each defaults to "leave as it is")."""
    decorators = [
        click.option("--proximity-policy", type=click.Choice(POLICIES), default=None,
                     help="This client's proximity policy; `default` follows the server's."),
        click.option("--device-network", "device_networks", multiple=True, metavar="CIDR",
                     help="Network device authorization may come from; repeat. Replaces the "
                     "list; `any` removes the restriction."),
        click.option("--device-country", "device_countries", multiple=True, metavar="CC",
                     help="Country (ISO 3166 code) device authorization may come from; "
                     "repeat. Needs a country database. Replaces the list; `any` removes it."),
        click.option("--device-scope", "device_scopes", multiple=True, metavar="SCOPE",
                     help="Scope the device grant may carry; repeat. Replaces the allow-list; "
                     "`any` removes it."),
        click.option("--device-access-token-lifetime", type=int, default=None,
                     metavar="SECONDS", help="Access tokens of device-grant logins live at "
                     "most this long; 0 uses the server's."),
        click.option("--device-refresh-token-lifetime", type=int, default=None,
                     metavar="SECONDS", help="Device-grant logins end at most this long after "
                     "approval; 0 uses the server's."),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _networks(values: tuple[str, ...]) -> tuple[str, ...] | None:
    if not values:
        return None
    if values == (ANY,):
        return ()
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            raise click.BadParameter(
                f"{value!r} is not a network in CIDR form, such as 192.0.2.0/24 or "
                "2001:db8::/32.", param_hint="--device-network") from None
    return tuple(out)


def _countries(values: tuple[str, ...]) -> tuple[str, ...] | None:
    if not values:
        return None
    if values == (ANY,):
        return ()
    for value in values:
        if not _COUNTRY.match(value):
            raise click.BadParameter(
                f"{value!r} is not a two-letter country code (ISO 3166-1), such as DE or US.",
                param_hint="--device-country")
    return tuple(sorted({v.upper() for v in values}))


def _lifetime(value: int | None, flag: str) -> int | None:
    if value is not None and value != 0 and value < _MIN_LIFETIME:
        raise click.BadParameter(
            f"{value} is too short: give at least {_MIN_LIFETIME} seconds, or 0 for the "
            "server's.", param_hint=flag)
    return value


def changes(opts: dict[str, Any]) -> dict[str, Any]:
    """The ``ClientChanges`` fields the given options name (popped from ``opts``)."""
    from ...protocol.proximity import ProximityPolicy

    policy = opts.pop("proximity_policy")
    scopes: tuple[str, ...] = opts.pop("device_scopes")
    return {
        "proximity_policy": ProximityPolicy(policy) if policy not in (None, "default")
        else None,
        "default_proximity_policy": policy == "default",
        "device_networks": _networks(opts.pop("device_networks")),
        "device_countries": _countries(opts.pop("device_countries")),
        "device_scopes": None if not scopes else (
            frozenset() if scopes == (ANY,) else frozenset(scopes)),
        "device_access_token_lifetime": _lifetime(
            opts.pop("device_access_token_lifetime"), "--device-access-token-lifetime"),
        "device_refresh_token_lifetime": _lifetime(
            opts.pop("device_refresh_token_lifetime"), "--device-refresh-token-lifetime"),
    }


def describe(client: Any) -> str:
    """One line of the client's rules for the command's confirmation ("" when none)."""
    parts = []
    if client.proximity_policy is not None:
        parts.append(f"proximity {client.proximity_policy.value}")
    if client.device_networks:
        parts.append("device networks " + " ".join(client.device_networks))
    if client.device_countries:
        parts.append("device countries " + " ".join(client.device_countries))
    if client.device_scopes is not None:
        parts.append("device scopes " + " ".join(sorted(client.device_scopes)))
    if client.device_access_token_lifetime:
        parts.append(f"device access tokens {client.device_access_token_lifetime} s")
    if client.device_refresh_token_lifetime:
        parts.append(f"device logins {client.device_refresh_token_lifetime} s")
    return "; ".join(parts)
