"""The offline lookup: operator-supplied MaxMind-format databases (``maxminddb``) for the
autonomous system and the country, and the hosting-provider list. Both database files are read
with memory mapping at start-up; a lookup is a tree walk in memory, never a network call.

Any MaxMind DB file with the usual field names works: MaxMind's GeoLite2 / GeoIP2 ASN and
Country or City, DB-IP's free "IP to ASN Lite" and "IP to Country Lite" (docs/operator.md)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import maxminddb

from ...protocol.proximity import NetworkFacts
from .hosting import HostingList

log = logging.getLogger("deviceflow.network")


class NetworkDatabaseError(ValueError):
    """A database file that cannot be opened; the message is one plain sentence."""


def is_local(address: str) -> bool:
    """Private (RFC 1918, RFC 4193), loopback, link-local, CGNAT (RFC 6598) or otherwise not
    globally routed: the same site as the server, never a place in the world."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global


def _open(path: Path | None, what: str) -> maxminddb.Reader | None:
    if path is None:
        return None
    try:
        return maxminddb.open_database(str(path))
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise NetworkDatabaseError(
            f"cannot open the {what} database {path}: {exc}."
        ) from None


class OfflineLookup:
    """``NetworkLookup`` from files: ``asn_database`` and ``country_database`` are MaxMind DB
    files (either may be None: that fact stays unknown), ``hosting`` the provider list."""

    def __init__(self, *, asn_database: Path | None = None,
                 country_database: Path | None = None,
                 hosting: HostingList | None = None) -> None:
        self._asn = _open(asn_database, "ASN")
        self._country = _open(country_database, "country")
        self._hosting = hosting if hosting is not None else HostingList.packaged()

    def facts(self, ip_address: str) -> NetworkFacts:
        if is_local(ip_address):
            return NetworkFacts(ip_address, local=True)
        try:
            ipaddress.ip_address(ip_address)
        except ValueError:
            return NetworkFacts(ip_address)  # "unknown" from a test client: nothing to look up
        asn_row = _get(self._asn, ip_address)
        country_row = _get(self._country, ip_address)
        asn = asn_row.get("autonomous_system_number")
        asn = asn if isinstance(asn, int) else None
        org = asn_row.get("autonomous_system_organization")
        country = country_row.get("country") or country_row.get("registered_country") or {}
        code = country.get("iso_code") if isinstance(country, Mapping) else None
        names = country.get("names", {}) if isinstance(country, Mapping) else {}
        name = names.get("en") if isinstance(names, Mapping) else None
        return NetworkFacts(
            ip_address,
            country=code.upper() if isinstance(code, str) else None,
            country_name=name if isinstance(name, str) else None,
            asn=asn,
            as_org=org if isinstance(org, str) else None,
            hosting=self._hosting.provider(asn, ip_address),
        )

    def close(self) -> None:
        for reader in (self._asn, self._country):
            if reader is not None:
                reader.close()


def _get(reader: maxminddb.Reader | None, address: str) -> Mapping[str, Any]:
    if reader is None:
        return {}
    try:
        row = reader.get(address)
    except ValueError:  # an IPv6 address in an IPv4-only database
        return {}
    return row if isinstance(row, Mapping) else {}
