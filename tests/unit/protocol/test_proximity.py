"""The proximity rules (``protocol.proximity.assess``), one row per rule and its edges. Section
numbers are RFC 10027 / BCP 247, "Best Current Practice for Security of Cross-Device Flows"."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from deviceflow.protocol.proximity import (
    FAST_ENTRY_SECONDS,
    MANY_PENDING,
    NetworkFacts,
    RiskLevel,
    RiskSignals,
    assess,
)

LOW, ELEVATED, HIGH = RiskLevel.LOW, RiskLevel.ELEVATED, RiskLevel.HIGH

AWS_US = NetworkFacts("3.5.140.2", "US", "United States", 16509, "AMAZON-02", "Amazon AWS")
HETZNER_DE = NetworkFacts("88.198.1.1", "DE", "Germany", 24940, "Hetzner Online GmbH",
                          "Hetzner")
HOME_DE = NetworkFacts("91.64.0.1", "DE", "Germany", 3209, "Vodafone GmbH")
PHONE_DE = NetworkFacts("80.187.0.1", "DE", "Germany", 3320, "Deutsche Telekom AG")
HOME_FR = NetworkFacts("90.1.0.1", "FR", "France", 3215, "Orange S.A.")
LAN_TV = NetworkFacts("192.168.1.20", local=True)
LAN_PHONE = NetworkFacts("192.168.1.21", local=True)
UNKNOWN = NetworkFacts("203.0.113.9")
SLOW = 120.0  # a person walking from the TV to their phone takes longer than FAST_ENTRY_SECONDS


@dataclass(frozen=True)
class Case:
    name: str
    signals: RiskSignals
    level: RiskLevel
    reasons: tuple[str, ...]


CASES = [
    # §6.1.1 "Shared network": the same public address is one router, so proximity.
    Case("same public IP", RiskSignals(HOME_DE, HOME_DE, 5.0), LOW, ("same_public_ip",)),
    # §6.1.1: both inside the server's private network (a LAN deployment).
    Case("same private network", RiskSignals(LAN_TV, LAN_PHONE, 5.0), LOW,
         ("same_private_network",)),
    # §6.1.1 and example B2 (§4.3.2): a device in a data centre, approved from a home.
    Case("device on a hosting network", RiskSignals(AWS_US, HOME_DE, SLOW), HIGH,
         ("hosting_device",)),
    Case("device on a hosting network, approver's country unknown",
         RiskSignals(replace(HETZNER_DE), UNKNOWN, SLOW), HIGH, ("hosting_device",)),
    # §6.1.1 limitations (VPNs): both in data centres says "VPN" as often as "attack".
    Case("both on hosting networks", RiskSignals(AWS_US, HETZNER_DE, SLOW), ELEVATED,
         ("hosting_both",)),
    # §6.1.1 "Geolocation": different countries, a VPN or travel may explain it.
    Case("different countries", RiskSignals(HOME_FR, HOME_DE, SLOW), ELEVATED,
         ("different_country",)),
    # §6.1.1 false positive: a phone on mobile data beside a TV on Wi-Fi, same country.
    Case("phone on mobile data, TV on Wi-Fi", RiskSignals(HOME_DE, PHONE_DE, 8.0), LOW, ()),
    # Nothing known about either side: no reason, no alarm.
    Case("nothing known", RiskSignals(UNKNOWN, NetworkFacts("198.51.100.7"), 3.0), LOW, ()),
    # §6.1.2's limitation: a kit makes the code when the victim clicks, so a distant code
    # entered within seconds is the kit's timing.
    Case("distant code entered at once", RiskSignals(HOME_FR, HOME_DE, 4.0), HIGH,
         ("different_country", "fast_distant_entry")),
    Case("hosting device, code entered at once", RiskSignals(AWS_US, HOME_DE, 4.0), HIGH,
         ("hosting_device", "fast_distant_entry")),
    Case("distant code entered just after the fast window",
         RiskSignals(HOME_FR, HOME_DE, FAST_ENTRY_SECONDS), ELEVATED, ("different_country",)),
    # §6.1.3 / §6.1.4: one code opened by several accounts was sent to several people.
    Case("two accounts on one code", RiskSignals(HOME_DE, PHONE_DE, SLOW, accounts_tried=2),
         ELEVATED, ("several_accounts",)),
    Case("three accounts on one code", RiskSignals(HOME_DE, PHONE_DE, SLOW, accounts_tried=3),
         HIGH, ("several_accounts",)),
    # Counted even on a shared network: proximity does not make a code shared by accounts safe.
    Case("same IP, two accounts", RiskSignals(HOME_DE, HOME_DE, SLOW, accounts_tried=2),
         ELEVATED, ("same_public_ip", "several_accounts")),
    # §6.1.11: a campaign asks for many codes from one network.
    Case("many pending codes from the device's network",
         RiskSignals(HOME_DE, PHONE_DE, SLOW, pending_from_network=MANY_PENDING), ELEVATED,
         ("many_pending",)),
    Case("just below many pending codes",
         RiskSignals(HOME_DE, PHONE_DE, SLOW, pending_from_network=MANY_PENDING - 1), LOW, ()),
    # A LAN's codes all come from "local": an office of TVs is no campaign.
    Case("many pending codes on the local network",
         RiskSignals(LAN_TV, LAN_PHONE, SLOW, pending_from_network=50), LOW,
         ("same_private_network",)),
    # The worst case: everything at once still reads as one level with every reason.
    Case("everything",
         RiskSignals(AWS_US, HOME_DE, 2.0, accounts_tried=4, pending_from_network=40), HIGH,
         ("hosting_device", "fast_distant_entry", "several_accounts", "many_pending")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule(case: Case) -> None:
    judged = assess(case.signals)
    assert judged.level is case.level
    assert tuple(r.code for r in judged.reasons) == case.reasons
    # The level is the highest reason's: nothing is judged without a reason to show.
    assert judged.level == max((r.level for r in judged.reasons), default=LOW)
    assert judged.warns == (case.level >= ELEVATED)


def test_the_page_sentence_names_provider_and_both_countries() -> None:
    judged = assess(RiskSignals(AWS_US, HOME_DE, SLOW))
    assert judged.sentences() == (
        "This request was started from a data centre (Amazon AWS) in the United States. "
        "You are in Germany.",
    )
    assert judged.detail() == "risk=high reasons=hosting_device"


def test_reassuring_reasons_are_recorded_but_not_shown() -> None:
    judged = assess(RiskSignals(HOME_DE, HOME_DE, SLOW))
    assert judged.sentences() == ()
    assert judged.detail() == "risk=low reasons=same_public_ip"


@pytest.mark.parametrize(("facts", "network"), [
    (AWS_US, "AS16509"),
    (LAN_TV, "local"),
    (UNKNOWN, "203.0.113.0/24"),
    (NetworkFacts("2001:db8:1:2::5"), "2001:db8:1::/48"),
])
def test_network_key(facts: NetworkFacts, network: str) -> None:
    assert facts.network == network
