"""The offline network lookup: MaxMind-format files written by the test and read by the real
reader, the packaged hosting list, an operator's own list, and local addresses."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.networkdb import write_databases

from deviceflow.protocol.proximity import NetworkFacts
from deviceflow.server.network import HostingList, OfflineLookup, is_local
from deviceflow.server.network.hosting import HostingListError
from deviceflow.server.network.lookup import NetworkDatabaseError


@pytest.fixture
def lookup(tmp_path: Path) -> OfflineLookup:
    asn, country = write_databases(tmp_path)
    return OfflineLookup(asn_database=asn, country_database=country)


def test_a_cloud_address_is_hosting_with_country_and_as(lookup: OfflineLookup) -> None:
    assert lookup.facts("3.5.140.2") == NetworkFacts(
        "3.5.140.2", "US", "United States", 16509, "AMAZON-02", "Amazon AWS")


def test_a_home_address_is_not_hosting(lookup: OfflineLookup) -> None:
    facts = lookup.facts("91.64.10.1")
    assert (facts.country, facts.asn, facts.hosting, facts.local) == ("DE", 3209, None, False)


def test_an_address_in_no_database_is_unknown(lookup: OfflineLookup) -> None:
    assert lookup.facts("8.8.8.8") == NetworkFacts("8.8.8.8")
    assert lookup.facts("2a00:1450::1") == NetworkFacts("2a00:1450::1")


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "192.168.0.5", "172.16.9.9", "100.64.1.1", "169.254.1.1", "::1",
    "fd00::1", "fe80::1", "::ffff:192.168.1.1",
])
def test_private_and_loopback_addresses_are_the_local_network(
        lookup: OfflineLookup, address: str) -> None:
    assert is_local(address)
    assert lookup.facts(address) == NetworkFacts(address, local=True)


def test_without_databases_only_local_and_listed_networks_are_known() -> None:
    extra = HostingList.parse('[[provider]]\nname = "Lab"\nasns = []\n'
                              'networks = ["198.18.0.0/15", "2001:db8:ff::/48"]\n', "t")
    bare = OfflineLookup(hosting=HostingList.packaged().merged(extra))
    assert bare.facts("5.6.7.8") == NetworkFacts("5.6.7.8")
    assert bare.facts("not an address") == NetworkFacts("not an address")


def test_the_packaged_list_names_the_big_clouds() -> None:
    hosting = HostingList.packaged()
    assert hosting.provider(16509, "3.5.1.1") == "Amazon AWS"
    assert hosting.provider(24940, "88.198.1.1") == "Hetzner"
    assert hosting.provider(14061, "1.2.3.4") == "DigitalOcean"
    assert hosting.provider(3209, "91.64.0.1") is None
    assert len(hosting.by_asn) >= 20


def test_an_operators_file_adds_providers_and_networks(tmp_path: Path) -> None:
    extra = tmp_path / "hosting.toml"
    extra.write_text('[[provider]]\nname = "Example Host"\nasns = [64500]\n'
                     'networks = ["192.0.2.0/24"]\nsource = "ours"\n')
    hosting = HostingList.load(extra)
    assert hosting.provider(64500, "1.1.1.1") == "Example Host"
    assert hosting.provider(None, "192.0.2.77") == "Example Host"
    assert hosting.provider(16509, "3.5.1.1") == "Amazon AWS"  # the packaged list still counts


@pytest.mark.parametrize(("text", "message"), [
    ("[[provider]]\nasns = [1]\n", r"every \[\[provider\]\] needs a name"),
    ('[[provider]]\nname = "X"\nasns = ["AS1"]\n', "has an ASN that is not a number"),
    ('[[provider]]\nname = "X"\nnetworks = ["300.1.1.1/8"]\n', "not in CIDR form"),
    ('[[provider]]\nname = "X"\nasns = 5\n', "must be a list"),
    ("not toml [", "is not valid TOML"),
])
def test_a_bad_hosting_file_is_one_sentence(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(HostingListError, match=message):
        HostingList.load(path)


def test_a_missing_or_broken_database_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(NetworkDatabaseError, match="cannot open the ASN database"):
        OfflineLookup(asn_database=tmp_path / "missing.mmdb")
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database")
    with pytest.raises(NetworkDatabaseError, match="cannot open the country database"):
        OfflineLookup(country_database=broken)
