"""Network facts for the proximity judgement (``protocol.proximity``): country, autonomous
system and hosting provider of an IP address, looked up offline, behind a small port so tests
inject their own.

No network call at request time: the databases are files the operator supplies and refreshes
(docs/operator.md, "Network databases"), and the hosting-provider list ships in the package
(``hosting_networks.toml``)."""

from __future__ import annotations

from typing import Protocol

from ...protocol.proximity import NetworkFacts
from .hosting import HostingList
from .lookup import OfflineLookup, is_local


class NetworkLookup(Protocol):
    """Facts about one address. Never raises and never blocks on the network: an address it
    knows nothing about gets facts with every field unknown."""

    def facts(self, ip_address: str) -> NetworkFacts: ...

    def close(self) -> None: ...


__all__ = ["HostingList", "NetworkLookup", "OfflineLookup", "is_local"]
