"""Tiny MaxMind-format databases written by the test (``mmdb-writer``), read back by the real
``maxminddb`` reader: the lookup is tested on the file format, not on a stand-in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet


@dataclass(frozen=True)
class Place:
    cidr: str
    asn: int
    org: str
    country: str
    country_name: str


AWS_US = Place("3.5.0.0/16", 16509, "AMAZON-02", "US", "United States")
HOME_DE = Place("91.64.0.0/16", 3209, "Vodafone GmbH", "DE", "Germany")
OTHER_HOME_DE = Place("91.65.0.0/16", 3209, "Vodafone GmbH", "DE", "Germany")
PLACES = (AWS_US, HOME_DE, OTHER_HOME_DE)


def write_databases(directory: Path, places: tuple[Place, ...] = PLACES) -> tuple[Path, Path]:
    """An ASN database and a country database covering ``places``; returns their paths."""
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    country = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    for p in places:
        asn.insert_network(IPSet([p.cidr]), {
            "autonomous_system_number": p.asn, "autonomous_system_organization": p.org})
        country.insert_network(IPSet([p.cidr]), {
            "country": {"iso_code": p.country, "names": {"en": p.country_name}}})
    asn_path, country_path = directory / "asn.mmdb", directory / "country.mmdb"
    asn.to_db_file(str(asn_path))
    country.to_db_file(str(country_path))
    return asn_path, country_path
