"""Which autonomous systems (and address ranges) belong to hosting and cloud providers: the
signal that a device authorization came from a rented server (docs/security.md, "Proximity").

The list is data (``hosting_networks.toml`` in this package, each provider with the source of
its numbers), and an operator may add their own file (``DEVICEFLOW_HOSTING_NETWORKS_FILE``) in
the same format; entries from both count."""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

_PACKAGED = "hosting_networks.toml"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class HostingListError(ValueError):
    """A hosting-networks file that cannot be read; the message is one plain sentence."""


@dataclass(frozen=True, slots=True)
class HostingList:
    """Autonomous system numbers and networks of hosting providers, by provider name."""

    by_asn: Mapping[int, str]
    networks: tuple[tuple[IPNetwork, str], ...] = ()

    @classmethod
    def packaged(cls) -> HostingList:
        text = resources.files(__package__).joinpath(_PACKAGED).read_text(encoding="utf-8")
        return cls.parse(text, _PACKAGED)

    @classmethod
    def load(cls, extra: Path | None = None) -> HostingList:
        """The packaged list, and the operator's file on top when given."""
        base = cls.packaged()
        if extra is None:
            return base
        try:
            text = extra.read_text(encoding="utf-8")
        except OSError as exc:
            raise HostingListError(f"cannot read the hosting networks file {extra}: "
                                   f"{exc.strerror or exc}.") from None
        return base.merged(cls.parse(text, str(extra)))

    @classmethod
    def parse(cls, text: str, source: str) -> HostingList:
        """``[[provider]]`` tables with ``name``, ``asns`` (integers), optional ``networks``
        (CIDR strings) and ``source`` (where the numbers come from)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise HostingListError(f"{source} is not valid TOML: {exc}.") from None
        by_asn: dict[int, str] = {}
        networks: list[tuple[IPNetwork, str]] = []
        for entry in data.get("provider", []):
            name = _name(entry, source)
            for asn in _list(entry, "asns", source):
                if not isinstance(asn, int) or isinstance(asn, bool) or not 0 < asn < 2**32:
                    raise HostingListError(f"{source}: {name} has an ASN that is not a number "
                                           f"between 1 and 4294967295: {asn!r}.")
                by_asn[asn] = name
            for cidr in _list(entry, "networks", source):
                try:
                    networks.append((ipaddress.ip_network(str(cidr), strict=False), name))
                except ValueError:
                    raise HostingListError(
                        f"{source}: {name} has a network that is not in CIDR form: {cidr!r}."
                    ) from None
        return cls(by_asn, tuple(networks))

    def merged(self, other: HostingList) -> HostingList:
        return HostingList({**self.by_asn, **other.by_asn}, self.networks + other.networks)

    def provider(self, asn: int | None, address: str) -> str | None:
        """The provider that runs ``address`` (by its AS number, else by a listed network)."""
        if asn is not None and asn in self.by_asn:
            return self.by_asn[asn]
        if not self.networks:
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for network, name in self.networks:
            if ip.version == network.version and ip in network:
                return name
        return None


def _name(entry: Any, source: str) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise HostingListError(f"{source}: every [[provider]] needs a name.")
    return name.strip()


def _list(entry: Mapping[str, Any], key: str, source: str) -> Iterable[Any]:
    value = entry.get(key, [])
    if not isinstance(value, list):
        raise HostingListError(f"{source}: {key} of {entry.get('name')} must be a list.")
    return value
