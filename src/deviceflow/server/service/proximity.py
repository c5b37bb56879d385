"""Proximity in the service (RFC 10027 §6.1.1): the device's network facts at device
authorization, and the risk judgement at consent with the counters it reads, each judgement
audited with its reasons. The rules themselves are pure (``protocol.proximity``)."""

from __future__ import annotations

import logging

from ...protocol.audit import AuditEventType
from ...protocol.grants.device_code import family_id
from ...protocol.models import Client, DeviceAuthorization, RequestOrigin
from ...protocol.proximity import (
    Judgement,
    NetworkFacts,
    ProximityPolicy,
    RiskLevel,
    RiskSignals,
    assess,
)
from ..ratelimit import Check
from .context import ServiceContext

log = logging.getLogger("deviceflow.proximity")


class ProximityService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def device_facts(self, client: Client, origin: RequestOrigin) -> NetworkFacts | None:
        """The device's network facts, looked up offline, when anything will read them: a
        proximity policy other than ``off``, or a client rule on countries."""
        if self.ctx.proximity_policy(client) is ProximityPolicy.OFF \
                and not client.device_countries:
            return None
        return self.ctx.network.facts(origin.ip_address)

    def _network_check(self, facts: NetworkFacts) -> Check:
        return self.ctx.limiter.network_codes_check(facts.network,
                                                    self.ctx.policy.device.expires_in)

    async def count_device_network(self, facts: NetworkFacts | None) -> None:
        """Count one more code from the device's network (an atomic hit in the limiter's
        storage, shared by every worker with Redis)."""
        if facts is not None:
            await self.ctx.limiter.count([self._network_check(facts)])

    async def judge(self, record: DeviceAuthorization, client: Client | None, user_id: str,
                    approver_ip: str) -> Judgement | None:
        """Judge one consent: note this account on the code (hit-then-test in storage), read
        the tally of the device's network, look the approver up, and audit the judgement. None
        when the policy is ``off`` or the device's facts were not recorded."""
        ctx = self.ctx
        policy = ctx.proximity_policy(client)
        if policy is ProximityPolicy.OFF or record.network is None:
            return None
        async with ctx.store.unit_of_work() as uow:
            accounts = await uow.device_authorizations.note_account(
                record.device_code_hash, user_id, record.expires_at)
            await uow.commit()
        pending = await ctx.limiter.tally(self._network_check(record.network))
        approver = ctx.network.facts(approver_ip)
        assessment = assess(RiskSignals(
            device=record.network, approver=approver,
            code_age=max(0.0, ctx.clock() - record.created_at),
            accounts_tried=accounts, pending_from_network=max(1, pending),
        ))
        judgement = Judgement(policy, assessment, record.network, approver)
        await ctx.audit.record(
            AuditEventType.PROXIMITY_ASSESSED, user_id=user_id, client_id=record.client_id,
            family_id=family_id(record), detail=f"{assessment.detail()} policy={policy.value}")
        if assessment.level is RiskLevel.HIGH:
            log.warning("high-risk device authorization: %s (policy %s)",
                        assessment.detail(), policy.value)
            # The operator's webhooks hear of it (issue 10 §4) once per device code, though the
            # consent page judges on every view; one outbox row, nothing when notifications are
            # off.
            if ctx.notifier.enabled and await ctx.limiter.first_time(
                    "high_risk_notice", record.device_code_hash,
                    max(1, int(record.expires_at - ctx.clock()) + 1)):
                await ctx.notifier.record_high_risk_request(
                    ctx.store, client_id=record.client_id, origin=record.origin,
                    risk=assessment.level.label, reasons=assessment.sentences(),
                    user_id=user_id, family_id=family_id(record),
                    network=record.network.described(), place=record.network.place)
        return judgement
