"""The consent page of the verification flow (RFC 8628 §3.3, §5.4): who asks, for what, from
where and when, the proximity judgement in plain words (RFC 10027 §6.1.1, §6.1.14), and
Approve or Deny.

Consent is remembered, the device is confirmed every time (issue 11): when the person already
granted this client every scope the request asks for, the page is a short confirmation — the
client, the code to compare, where and when, any risk, Approve / Deny — without the permissions
list; RFC 8628 §5.4 still asks them to confirm the device, so the page is never skipped. A
request asking for more shows the full list with the scopes not granted before marked "new".

Under the ``warn`` and ``enforce`` proximity policies an elevated or high risk is said above
the buttons in ``role="alert"`` and Deny comes first and takes the focus (RFC 10027 §6.1.14:
"the 'decline' option SHOULD be the default option"). Under ``enforce`` a high-risk request has
no Approve button, and a posted Approve is refused by the service, which denies the request:
the device gets ``access_denied`` (RFC 8628 §3.5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ....protocol.consent import Consent, covers, new_scopes
from ....protocol.models import User
from ....protocol.proximity import Judgement
from ....protocol.scopes import OFFLINE_ACCESS
from ....protocol.verification import Decision
from ...service import DecisionOutcome, PendingRequest, SignedIn
from .. import csrf
from ..pages import page_url, redirect, render
from ..requests import client_ip
from .browser import (
    FORM_EXPIRED,
    NO_DECISION,
    RESULT,
    ago,
    entered_code,
    forget_sign_in,
    form,
    service,
    sign_in_id,
    signed_in,
    within,
)
from .verification import code_refused

OTHER_TAB = (
    "You entered a different code in another tab. Compare this code with your device, "
    "then choose again."
)
DENY_ADVICE = "If someone sent you this code or link, choose Deny."
REFUSED = (
    "This request can't be approved here: it looks like someone far away started it. "
    "It has been denied."
)
BLOCKED = "For your safety this request can't be approved here. Choose Deny."

_MAX_USER_AGENT = 512
_DECISIONS: Mapping[str, Decision] = {d.value: d for d in Decision}


def _risk(judgement: Judgement | None) -> dict[str, object]:
    """What the ``_risk.html`` partial reads: the sentences, whether Deny leads, whether
    Approve is offered at all."""
    warn = judgement is not None and judgement.shows_warning
    blocked = judgement is not None and judgement.blocks_approval
    return {
        "risk_sentences": judgement.assessment.sentences() if warn and judgement else (),
        "risk_advice": BLOCKED if blocked else DENY_ADVICE,
        "deny_first": warn,
        "approve_allowed": not blocked,
    }


def _remembered(pending: PendingRequest, consent: Consent | None) -> dict[str, object]:
    """What the page says of the person's earlier consent: the short confirmation when it
    covers the request, else which scopes are new (none marked when nothing is remembered:
    then everything is new, and the plain list says so)."""
    added = frozenset(new_scopes(consent, pending.requested)) if consent else frozenset()
    return {
        "confirm_only": covers(consent, pending.requested),
        "new_scopes": added,
        "stay_signed_in_new": OFFLINE_ACCESS in added,
        "consented_at": consent.updated_at if consent else None,
    }


def _consent_page(
    request: Request,
    pending: PendingRequest,
    user: User,
    judgement: Judgement | None,
    consent: Consent | None = None,
    *,
    alert: str | None = None,
    status: int = 200,
) -> Response:
    now = service(request).now()
    return render(request, "consent.html", {
        "pending": pending,
        **_remembered(pending, consent),
        "user": user,
        "alert": alert,
        "user_agent": pending.origin.user_agent[:_MAX_USER_AGENT],
        "requested_ago": ago(max(0.0, now - pending.created_at)),
        "expires_in": within(max(0.0, pending.expires_at - now)),
        "action": page_url(request, "device_consent"),
        "signout_action": page_url(request, "device_signout"),
        **_risk(judgement),
    }, status=status)


@dataclass(frozen=True, slots=True)
class _Consent:
    signed: SignedIn
    pending: PendingRequest
    user: User
    judgement: Judgement | None
    consent: Consent | None


async def _load_consent(request: Request, *, to_approve: bool,
                        judge: bool = True) -> _Consent | Response:
    """What the consent step needs, or the page to show instead: the code step when this session
    entered no code, sign-in when it is not signed in (or, ``to_approve``, signed in longer ago
    than ``approval_max_age``), and the refusal when the code is no longer actionable (decided,
    expired). With ``judge``, the proximity judgement is made (and audited) for this account
    and address."""
    flow = service(request)
    code = entered_code(request)
    if code is None:
        return redirect(page_url(request, "device"))
    signed = await signed_in(request, flow)
    if signed is None or (to_approve and not signed.may_approve):
        return redirect(page_url(request, "device_signin"))
    pending = await flow.verification.pending_request(code)
    if pending is None:
        return await code_refused(request)
    user = await flow.accounts.get_user(signed.user_id)
    if user is None:
        forget_sign_in(request)
        return redirect(page_url(request, "device_signin"))
    judgement = await flow.verification.judge(code, signed.user_id, client_ip(request)) \
        if judge else None
    consent = await flow.consents.remembered(signed.user_id, pending.client_id)
    return _Consent(signed, pending, user, judgement, consent)


async def consent_form(request: Request) -> Response:
    """GET /device/consent. Reopening it after a decision (Back, reload, an old link) finds the
    code no longer actionable and shows the refusal: a decided code cannot be revived. Its
    Approve button needs a fresh password, so a stale sign-in is sent to enter it first."""
    loaded = await _load_consent(request, to_approve=True)
    if isinstance(loaded, Response):
        return loaded
    return _consent_page(request, loaded.pending, loaded.user, loaded.judgement,
                         loaded.consent)


async def consent_submit(request: Request) -> Response:
    """POST /device/consent: record Approve or Deny. The result page is shown only after the
    service stored the decision; its compare-and-set makes a second decision of the same code
    (Back, another tab, a race) fail instead of overwrite (RFC 8628 §5.4).

    Approve with a sign-in older than ``approval_max_age`` records nothing and asks for the
    password again; Deny needs only a live sign-in (it gives nothing away). Approve of a
    request the proximity policy blocks is stored as a denial, and the page says why."""
    posted = await form(request)
    if isinstance(posted, Response):
        return posted
    csrf_ok = csrf.is_valid(request.session, posted.get(csrf.FIELD))
    # A forged post is judged (and audited) for nothing: the judgement comes after the CSRF check.
    loaded = await _load_consent(request, to_approve=False, judge=csrf_ok)
    if isinstance(loaded, Response):
        return loaded
    pending, judgement = loaded.pending, loaded.judgement
    if not csrf_ok:
        return _consent_page(request, pending, loaded.user, judgement, loaded.consent,
                             alert=FORM_EXPIRED, status=403)
    # The session holds one code; a consent page from an older tab must not approve the newer code
    # the person never saw on this page.
    if posted.get("user_code") != pending.user_code:
        return _consent_page(request, pending, loaded.user, judgement, loaded.consent,
                             alert=OTHER_TAB, status=409)
    decision = _DECISIONS.get(posted.get("decision", ""))
    if decision is None:
        return _consent_page(request, pending, loaded.user, judgement, loaded.consent,
                             alert=NO_DECISION, status=400)
    if decision is Decision.APPROVE and not loaded.signed.may_approve:
        return redirect(page_url(request, "device_signin"))
    outcome = await service(request).verification.record_decision(
        pending.user_code, decision, loaded.signed.user_id, loaded.signed.auth_time,
        session_id=sign_in_id(request), judgement=judgement,
    )
    if outcome is DecisionOutcome.SIGN_IN_AGAIN:  # went stale or ended since it was read
        return redirect(page_url(request, "device_signin"))
    if outcome is DecisionOutcome.REFUSED_BY_POLICY:
        request.app.state.metrics.denials.inc()
        return render(request, "error.html", {
            "title": "Request denied",
            "message": REFUSED,
            "start": page_url(request, "device"),
        }, status=403)
    if outcome is not DecisionOutcome.RECORDED:
        return await code_refused(request)
    metrics = request.app.state.metrics
    (metrics.approvals if decision is Decision.APPROVE else metrics.denials).inc()
    request.session[RESULT] = {"decision": decision.value, "client_name": pending.client_name,
                               "decided_at": service(request).now()}
    return redirect(page_url(request, "device_done"))


routes: list[BaseRoute] = [
    Route("/device/consent", consent_form, methods=["GET"], name="device_consent"),
    Route("/device/consent", consent_submit, methods=["POST"], name="device_consent_submit"),
]
