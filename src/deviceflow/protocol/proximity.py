"""Proximity: how far apart the device that asked for a code and the person approving it are,
judged from their networks (RFC 10027 / BCP 247, "Best Current Practice for Security of
Cross-Device Flows", §6.1.1 "Establish Proximity").

Pure: the facts about each side's network come in (``server/network`` looks them up, offline),
a level and reasons in plain words come out. What the server then does with the level is the
proximity policy's (``ProximityPolicy``): record it, warn on the consent page, or refuse.

The remote phishing this defends against (BCP §4.1.1, and example B2 in §4.3.2): an attacker
starts a device authorization from a rented host, sends the victim the real verification URL and
code, and polls for the tokens while the victim signs in and approves. The attacker's device and
the victim are then on different networks, usually in a data centre and often in another country,
and phishing kits create the code at the moment the victim clicks, so it is entered within
seconds. None of these proves an attack (BCP §6.1.1's limitations: VPNs, a phone on mobile data
beside a TV on Wi-Fi, borders), so each is a reason with a level, never a verdict on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

FAST_ENTRY_SECONDS = 30.0
"""A code typed in within this many seconds of its creation was not read off a screen by
someone who had just started the device: a phishing kit that made the code when the victim
clicked hands it over at once (BCP §6.1.2's limitation, "SQPHISH")."""

SEVERAL_ACCOUNTS = 2
"""This many different accounts opening one code is one too many (BCP §6.1.4 "Unique Codes")."""
MANY_ACCOUNTS = 3

MANY_PENDING = 10
"""Codes asked for from one network within one code lifetime that make it look like a phishing
campaign rather than a household (BCP §6.1.11 "Rate Limits": scaled attacks need many codes)."""


class ProximityPolicy(StrEnum):
    """What the server does with a risk judgement (docs/security.md, "Proximity")."""

    OFF = "off"
    """No lookup, no judgement."""
    REPORT = "report"
    """Judge and record (audit log, logs); the pages do not change."""
    WARN = "warn"
    """And show the risk on the consent page, with Deny first at elevated or high risk."""
    ENFORCE = "enforce"
    """And refuse to approve a high-risk request: the device gets ``access_denied``."""


class RiskLevel(IntEnum):
    """Ordered, so the judgement is the highest level of its reasons."""

    LOW = 0
    ELEVATED = 1
    HIGH = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class NetworkFacts:
    """What is known offline about one IP address. ``None`` is "not known" (no database, or
    the address is not in it), never a guess."""

    ip_address: str
    country: str | None = None
    """ISO 3166-1 alpha-2, upper case."""
    country_name: str | None = None
    """In English, for the page ("Germany")."""
    asn: int | None = None
    as_org: str | None = None
    hosting: str | None = None
    """The hosting or cloud provider that runs this network ("Amazon AWS"), or None."""
    local: bool = False
    """A private, loopback or link-local address: the same building as the server."""

    @property
    def network(self) -> str:
        """The key "the same network" is counted by: the autonomous system when known, else
        the address's /24 (IPv4) or /48 (IPv6), or ``local``."""
        if self.local:
            return "local"
        if self.asn is not None:
            return f"AS{self.asn}"
        return _prefix(self.ip_address)

    def described(self) -> str | None:
        """The network in words for a notification ("Amazon AWS, AS16509"), None when unknown."""
        if self.local:
            return "a local network"
        name = self.hosting or self.as_org
        if self.asn is None:
            return name
        return f"{name}, AS{self.asn}" if name else f"AS{self.asn}"

    @property
    def place(self) -> str | None:
        """The country in words, when known."""
        return self.country_name or self.country


def _prefix(address: str) -> str:
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    bits = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    """Stable, for the audit log and tests (``hosting_device``)."""
    level: RiskLevel
    text: str
    """One plain sentence for the person at the consent page."""


@dataclass(frozen=True, slots=True)
class RiskSignals:
    """Everything one judgement reads."""

    device: NetworkFacts
    approver: NetworkFacts
    code_age: float
    """Seconds from the code's creation to now (the code entry or the consent)."""
    accounts_tried: int = 1
    """Distinct accounts that have opened this code's consent page, this one included."""
    pending_from_network: int = 1
    """Codes asked for from the device's network within one code lifetime, this one included."""


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """A judgement: a level and the reasons that led to it. A value the pages, the audit log
    and (later) notifications read; it holds no secret."""

    level: RiskLevel
    reasons: tuple[Reason, ...]

    @property
    def warns(self) -> bool:
        return self.level >= RiskLevel.ELEVATED

    def sentences(self) -> tuple[str, ...]:
        """What the page says: the reasons that raised the level (not the reassuring ones)."""
        return tuple(r.text for r in self.reasons if r.level > RiskLevel.LOW)

    def detail(self) -> str:
        """The audit log's line: ``risk=high reasons=hosting_device,fast_distant_entry``."""
        codes = ",".join(r.code for r in self.reasons) or "none"
        return f"risk={self.level.label} reasons={codes}"


@dataclass(frozen=True, slots=True)
class Judgement:
    """A risk judgement with the policy it is acted on under: what the consent page, the
    decision and (later) notifications read. Holds no secret (IP addresses and network names
    only), so it may be logged, audited and sent to an operator's webhook."""

    policy: ProximityPolicy
    assessment: RiskAssessment
    device: NetworkFacts
    approver: NetworkFacts

    @property
    def level(self) -> RiskLevel:
        return self.assessment.level

    @property
    def shows_warning(self) -> bool:
        """The consent page shows the reasons (role="alert") and puts Deny first."""
        return self.policy in (ProximityPolicy.WARN, ProximityPolicy.ENFORCE) \
            and self.assessment.warns

    @property
    def blocks_approval(self) -> bool:
        """Approving is refused and the request denied (the device gets ``access_denied``)."""
        return self.policy is ProximityPolicy.ENFORCE and self.level is RiskLevel.HIGH


_THE = frozenset({
    "United States", "United Kingdom", "Netherlands", "Philippines", "Czech Republic",
    "United Arab Emirates", "Bahamas", "Gambia", "Maldives", "Seychelles", "Dominican Republic",
    "Central African Republic", "Marshall Islands", "Solomon Islands", "Comoros",
})


def _place(facts: NetworkFacts) -> str:
    name = facts.country_name or facts.country or "an unknown country"
    return f"the {name}" if name in _THE else name


def _distant(device: NetworkFacts, approver: NetworkFacts) -> bool:
    """Different countries, both known: the one distance an IP address tells reliably."""
    return (device.country is not None and approver.country is not None
            and device.country != approver.country)


def assess(s: RiskSignals) -> RiskAssessment:
    """Judge one request. Each rule adds a reason; the level is the highest. The rules and
    the BCP sections they follow are in docs/security.md ("Proximity") and the unit tests."""
    device, approver = s.device, s.approver
    reasons: list[Reason] = []
    same = _same_network(device, approver)
    if same is not None:
        # BCP §6.1.1 "Shared network": the same public address (one home or office router)
        # or both inside the server's own private network is proximity; the rules about
        # distance below would only say the same thing wrongly.
        reasons.append(same)
    else:
        reasons.extend(_distance_reasons(s))
    reasons.extend(_volume_reasons(s))
    level = max((r.level for r in reasons), default=RiskLevel.LOW)
    return RiskAssessment(level, tuple(reasons))


def _same_network(device: NetworkFacts, approver: NetworkFacts) -> Reason | None:
    if device.local and approver.local:
        return Reason("same_private_network", RiskLevel.LOW,
                      "This request came from the same private network as you.")
    if not device.local and device.ip_address == approver.ip_address:
        return Reason("same_public_ip", RiskLevel.LOW,
                      "This request came from the same internet address as you.")
    return None


def _distance_reasons(s: RiskSignals) -> list[Reason]:
    device, approver = s.device, s.approver
    reasons: list[Reason] = []
    started = "This request was started"
    if device.hosting is not None and approver.hosting is None:
        # BCP §6.1.1 and example B2 (§4.3.2): the attacker's "device" is a rented server. A TV or a
        # CLI on a laptop is on a home or office network; one in a data centre, approved by
        # someone who is not, is the phishing shape.
        where = f" in {_place(device)}" if device.country else ""
        reasons.append(Reason(
            "hosting_device", RiskLevel.HIGH,
            f"{started} from a data centre ({device.hosting}){where}."
            + (f" You are in {_place(approver)}." if approver.country else "")))
    elif device.hosting is not None:
        # Both in data centres: a VPN or a cloud desktop on the approver's side, or a CI
        # runner approved from a cloud workstation. Worth saying, not worth refusing.
        reasons.append(Reason(
            "hosting_both", RiskLevel.ELEVATED,
            f"{started} from a data centre ({device.hosting}), and you are connected "
            "through one too."))
    distant = _distant(device, approver)
    if distant and device.hosting is None:
        # BCP §6.1.1 "Geolocation": different countries. A VPN or travel explains it, so
        # elevated, not high (the page asks; enforce does not refuse on this alone).
        reasons.append(Reason(
            "different_country", RiskLevel.ELEVATED,
            f"{started} in {_place(device)}. You are in {_place(approver)}."))
    if (distant or (device.hosting is not None and approver.hosting is None)) \
            and s.code_age < FAST_ENTRY_SECONDS:
        # BCP §6.1.2's limitation: kits create the code when the victim clicks, so a code
        # from far away that is entered within seconds is the kit's timing, not a person's
        # walk from the TV to their phone.
        reasons.append(Reason(
            "fast_distant_entry", RiskLevel.HIGH,
            f"The code was entered {int(s.code_age)} seconds after it was created, far from "
            "where it was created."))
    return reasons


def _volume_reasons(s: RiskSignals) -> list[Reason]:
    reasons: list[Reason] = []
    if s.accounts_tried >= SEVERAL_ACCOUNTS:
        # BCP §6.1.3 "One-Time or Limited Use Codes" and §6.1.4 "Unique Codes": one code
        # sent to many victims is opened by many accounts; a person's own code by one.
        level = RiskLevel.HIGH if s.accounts_tried >= MANY_ACCOUNTS else RiskLevel.ELEVATED
        reasons.append(Reason(
            "several_accounts", level,
            f"{s.accounts_tried} different accounts have opened this code."))
    if s.pending_from_network >= MANY_PENDING and not s.device.local:
        # BCP §6.1.11 "Rate Limits": a campaign needs many codes at once; a home asks for one.
        reasons.append(Reason(
            "many_pending", RiskLevel.ELEVATED,
            f"{s.pending_from_network} sign-in requests were started from the same network "
            "as this one in the last few minutes."))
    return reasons


__all__ = [
    "FAST_ENTRY_SECONDS",
    "MANY_ACCOUNTS",
    "MANY_PENDING",
    "SEVERAL_ACCOUNTS",
    "Judgement",
    "NetworkFacts",
    "ProximityPolicy",
    "Reason",
    "RiskAssessment",
    "RiskLevel",
    "RiskSignals",
    "assess",
]
