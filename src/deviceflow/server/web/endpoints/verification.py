"""The verification pages: where a person enters a user code, signs in, and approves or denies a
device (RFC 8628 §3.3), with the defences of §5.1 (brute force), §5.4 (remote phishing) and the
code-entry rules of §6.1.

This module only turns HTTP into service calls and results into pages. The rules (which codes are
actionable, the brute-force budgets, single use of a decision) live in the service and below.

Flow, each step a POST answered by a 303 to the next GET (POST-redirect-GET):

    GET/POST /device          enter the code (pre-filled from verification_uri_complete)
    GET/POST /device/signin   skipped while the browser is signed in, unless approving needs
                              the password again (older than ``approval_max_age``)
    GET/POST /device/consent  who asks, for what, from where and when; Approve or Deny
    GET      /device/done     "Device connected" / "Request denied"
    POST     /device/signout

"Your devices" (``endpoints.devices``) shares this sign-in: it sends a browser to
``/device/signin`` with the page to return to (``RETURN_TO``, a route name).

The sign-in lives on the server (``service.sessions``): the signed cookie carries only its random
id, read back from storage on every request that relies on it, so signing out, a password change,
removing the user or ``deviceflow user signout`` ends it for every copy of the cookie. The rest of
the cookie is page state: a random id for the per-session code budget, the code this session
entered, the CSRF token, and the last result.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ....protocol.errors import InvalidRequestError
from ....protocol.models import Timestamp, User
from ....protocol.params import FormParams
from ....protocol.verification import Decision
from ...service import (
    CodeAttempt,
    CodeRefused,
    DecisionOutcome,
    DeviceFlowService,
    PendingRequest,
    SignedIn,
    SignInRefused,
    Throttled,
)
from .. import csrf
from ..pages import page_url, redirect, render
from ..requests import client_ip, read_form

# --- session keys ------------------------------------------------------------------------------

SESSION_ID = "sid"
SIGN_IN = "signin"
"""The random id of the server-side sign-in; never who or when."""
USER_CODE = "user_code"
RESULT = "result"
RETURN_TO = "return_to"
"""A page to return to after signing in, by route name (never a URL: no open redirect)."""
RETURN_PAGES = frozenset({"account_devices", "authorize_consent"})

# --- what the pages say ------------------------------------------------------------------------

CODE_REFUSED = (
    "That code didn't work. Check the code shown on your device and type it again. "
    "If it still doesn't work, start the sign-in on your device again to get a new code."
)
CODE_MISSING = "Enter the code shown on your device."
SIGN_IN_REFUSED = "That username and password don't match an account here."
CREDENTIALS_MISSING = "Enter your username and password."
FORM_EXPIRED = "This form has expired or didn't come from this site. Please try again."
OTHER_TAB = (
    "You entered a different code in another tab. Compare this code with your device, "
    "then choose again."
)
NO_DECISION = "Choose Approve or Deny."
SIGN_IN_HELPS = "If you have an account here, sign in first and you can go on entering codes."
SIGN_IN_AGAIN = (
    "Enter your password again to approve this device: you signed in more than {age} ago."
)
SIGN_IN_AGAIN_DEVICES = (
    "Enter your password again to sign out devices: you signed in more than {age} ago."
)
SIGN_IN_AGAIN_FOR = {"authorize_consent": (
    "Enter your password again to approve this sign-in: you signed in more than {age} ago."
)}
"""The reason to ask again, by the page (``RETURN_TO``) waiting for the sign-in."""

_MAX_ECHO = 64
"""Longest typed code we put back into the input (the value is escaped; this only bounds size)."""
_MAX_USERNAME = 256
_MAX_USER_AGENT = 512

_DECISIONS: Mapping[str, Decision] = {d.value: d for d in Decision}


# --- request helpers ---------------------------------------------------------------------------


def _service(request: Request) -> DeviceFlowService:
    service = request.app.state.service
    if not isinstance(service, DeviceFlowService):
        raise TypeError("app.state.service is not a DeviceFlowService")
    return service


def _session_id(request: Request) -> str:
    """The key of the per-session budget. A guesser can drop the cookie to get a new one, which is
    why the per-IP and global budgets exist too (RFC 8628 §5.1)."""
    sid = request.session.get(SESSION_ID)
    if not isinstance(sid, str) or not sid:
        sid = secrets.token_urlsafe(16)
        request.session[SESSION_ID] = sid
    return sid


_SIGNED_IN_STATE = "deviceflow_signed_in"


@dataclass(frozen=True, slots=True)
class _Read:
    """The sign-in as read for this request (so one request reads storage once)."""

    signed: SignedIn | None


async def _signed_in(request: Request, service: DeviceFlowService) -> SignedIn | None:
    """This browser's live sign-in, read from storage: a revoked, expired or unknown one is
    dropped from the cookie."""
    cached = getattr(request.state, _SIGNED_IN_STATE, None)
    if isinstance(cached, _Read):
        return cached.signed
    signed = await service.sessions.current(request.session.get(SIGN_IN))
    if signed is None:
        request.session.pop(SIGN_IN, None)
    setattr(request.state, _SIGNED_IN_STATE, _Read(signed))
    return signed


def _sign_in_id(request: Request) -> str:
    """The cookie's sign-in id ("" when none: no stored sign-in has that hash)."""
    value = request.session.get(SIGN_IN)
    return value if isinstance(value, str) else ""


def _forget_sign_in(request: Request) -> None:
    request.session.pop(SIGN_IN, None)
    setattr(request.state, _SIGNED_IN_STATE, _Read(None))


def _entered_code(request: Request) -> str | None:
    code = request.session.get(USER_CODE)
    return code if isinstance(code, str) and code else None


def return_to(request: Request) -> str | None:
    """The page (route name) to go back to after signing in, if another page sent us here."""
    page = request.session.get(RETURN_TO)
    return page if isinstance(page, str) and page in RETURN_PAGES else None


def sign_in_then(request: Request, page: str) -> Response:
    """Send the browser to sign in (again), and back to ``page`` afterwards."""
    request.session[RETURN_TO] = page
    return redirect(page_url(request, "device_signin"))


def _needs_fresh_sign_in(request: Request) -> bool:
    """Whether what waits for this sign-in needs the password entered recently: approving an
    entered code, or signing out devices."""
    return return_to(request) is not None or _entered_code(request) is not None


async def _form(request: Request) -> FormParams | Response:
    try:
        return await read_form(request)
    except InvalidRequestError:
        return render(request, "error.html", {
            "title": "Something went wrong",
            "message": "That form couldn't be read. Please start again.",
            "start": page_url(request, "device"),
        }, status=400)


# --- wording helpers ---------------------------------------------------------------------------


def _wait_message(seconds: int) -> str:
    if seconds < 60:
        amount, unit = seconds, "second"
    else:
        amount, unit = math.ceil(seconds / 60), "minute"
    plural = "" if amount == 1 else "s"
    return f"Too many attempts. Please wait {amount} {unit}{plural} and try again."


def _utc(ts: Timestamp) -> str:
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return f"{moment.day} {moment:%B %Y at %H:%M:%S} UTC"


def _iso(ts: Timestamp) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def _ago(seconds: float) -> str:
    if seconds < 60:
        return "less than a minute ago"
    minutes = int(seconds // 60)
    return f"{minutes} minute{'' if minutes == 1 else 's'} ago"


def _within(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute{'' if minutes == 1 else 's'}"


# --- page builders -----------------------------------------------------------------------------


async def _code_page(
    request: Request,
    *,
    value: str = "",
    alert: str | None = None,
    status: int = 200,
    retry_after: int | None = None,
    sign_in_link: bool = False,
) -> Response:
    service = _service(request)
    signed = await _signed_in(request, service)
    user = await service.accounts.get_user(signed.user_id) if signed else None
    return render(request, "code.html", {
        "value": value[:_MAX_ECHO],
        "alert": alert,
        # Only the global anonymous budget is spent: signing in gives a budget of one's own.
        "sign_in_link": page_url(request, "device_signin") if sign_in_link else None,
        "sign_in_hint": SIGN_IN_HELPS,
        "user": user,
        "action": page_url(request, "device"),
        "signout_action": page_url(request, "device_signout"),
    }, status=status, headers={"Retry-After": str(retry_after)} if retry_after else None)


async def _code_refused(request: Request) -> Response:
    """One page, one status, one message for every refused code: unknown, malformed, expired,
    used, approved or denied elsewhere. The page must be no oracle (RFC 8628 §5.1)."""
    return await _code_page(request, alert=CODE_REFUSED, status=400)


async def _signin_page(
    request: Request,
    *,
    username: str = "",
    alert: str | None = None,
    status: int = 200,
    retry_after: int | None = None,
) -> Response:
    """The sign-in form. Shown to someone still signed in only to approve a device with a
    sign-in older than ``approval_max_age``: then it says why, with the username filled in."""
    service = _service(request)
    signed = await _signed_in(request, service)
    again = None
    if signed is not None and not signed.may_approve and _needs_fresh_sign_in(request):
        page = return_to(request)
        wording = SIGN_IN_AGAIN_FOR.get(page, SIGN_IN_AGAIN_DEVICES) if page else SIGN_IN_AGAIN
        again = wording.format(age=_within(service.policy.approval_max_age))
        if not username:
            user = await service.accounts.get_user(signed.user_id)
            username = user.username if user else ""
    return render(request, "signin.html", {
        "username": username[:_MAX_USERNAME],
        "alert": alert,
        "again": again,
        "user_code": None if return_to(request) else _entered_code(request),
        "action": page_url(request, "device_signin"),
    }, status=status, headers={"Retry-After": str(retry_after)} if retry_after else None)


def _consent_page(
    request: Request,
    pending: PendingRequest,
    user: User,
    *,
    alert: str | None = None,
    status: int = 200,
) -> Response:
    now = _service(request).now()
    return render(request, "consent.html", {
        "pending": pending,
        "user": user,
        "alert": alert,
        "user_agent": pending.origin.user_agent[:_MAX_USER_AGENT],
        "requested_at": _utc(pending.created_at),
        "requested_iso": _iso(pending.created_at),
        "requested_ago": _ago(max(0.0, now - pending.created_at)),
        "expires_in": _within(max(0.0, pending.expires_at - now)),
        "action": page_url(request, "device_consent"),
        "signout_action": page_url(request, "device_signout"),
    }, status=status)


def _after_sign_in(request: Request) -> str:
    page = return_to(request)
    if page is not None:
        request.session.pop(RETURN_TO, None)
        return page_url(request, page)
    return page_url(request, "device_consent" if _entered_code(request) else "device")


# --- endpoints ---------------------------------------------------------------------------------


async def code_form(request: Request) -> Response:
    """GET /device. ``verification_uri_complete`` (RFC 8628 §3.3.1) only pre-fills the code: the
    person still presses Continue, and then compares the code on the consent page with the one on
    the device, so a link sent by an attacker cannot approve anything by being opened (§5.4)."""
    return await _code_page(request, value=request.query_params.get("user_code", ""))


async def code_submit(request: Request) -> Response:
    """POST /device: look the typed code up under the brute-force budgets (RFC 8628 §5.1)."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    raw = form.get("user_code", "")
    # CSRF first: a forged post must not spend or count anything.
    if not csrf.is_valid(request.session, form.get(csrf.FIELD)):
        return await _code_page(request, value=raw, alert=FORM_EXPIRED, status=403)
    if not raw.strip():
        return await _code_page(request, alert=CODE_MISSING, status=400)
    service = _service(request)
    signed = await _signed_in(request, service)
    attempt = CodeAttempt(
        session_id=_session_id(request),
        ip_address=client_ip(request),
        user_id=signed.user_id if signed else None,
    )
    # Case, spaces and dashes are the service's to ignore (RFC 8628 §6.1): pass the raw text.
    entry = await service.verification.enter_user_code(raw, attempt)
    if isinstance(entry, Throttled):
        return await _code_page(
            request, value=raw, alert=_wait_message(entry.retry_after), status=429,
            retry_after=entry.retry_after, sign_in_link=entry.sign_in_helps,
        )
    if isinstance(entry, CodeRefused):
        request.session.pop(USER_CODE, None)
        return await _code_refused(request)
    request.session[USER_CODE] = entry.user_code
    request.session.pop(RESULT, None)
    request.session.pop(RETURN_TO, None)  # the code is what this browser is here for now
    ready = signed is not None and signed.may_approve
    return redirect(page_url(request, "device_consent" if ready else "device_signin"))


async def signin_form(request: Request) -> Response:
    """GET /device/signin, skipped while this browser's sign-in is within its lifetime, unless
    an entered code waits for an approval (or "Your devices" for a sign-out) that needs the
    password again."""
    signed = await _signed_in(request, _service(request))
    if signed is not None and (signed.may_approve or not _needs_fresh_sign_in(request)):
        return redirect(_after_sign_in(request))
    return await _signin_page(request)


async def signin_submit(request: Request) -> Response:
    """POST /device/signin. Unknown user and wrong password read the same; failures count per
    account and per IP in the service."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    username = form.get("username", "")[:_MAX_USERNAME]
    password = form.get("password", "")
    if not csrf.is_valid(request.session, form.get(csrf.FIELD)):
        return await _signin_page(request, username=username, alert=FORM_EXPIRED, status=403)
    if not username or not password:
        return await _signin_page(request, username=username, alert=CREDENTIALS_MISSING,
                                  status=400)
    service = _service(request)
    result = await service.accounts.sign_in(username, password, client_ip(request))
    if isinstance(result, Throttled):
        return await _signin_page(
            request, username=username, alert=_wait_message(result.retry_after), status=429,
            retry_after=result.retry_after,
        )
    if isinstance(result, SignInRefused):
        return await _signin_page(request, username=username, alert=SIGN_IN_REFUSED, status=400)
    # A new server-side sign-in with a new id; the one this browser held (if any) ends with it.
    request.session[SIGN_IN] = await service.sessions.start(
        result.user_id, replacing=request.session.get(SIGN_IN)
    )
    setattr(request.state, _SIGNED_IN_STATE, None)  # read again when next asked
    # A new token after authentication: one planted or seen before sign-in is worthless now.
    csrf.rotate(request.session)
    return redirect(_after_sign_in(request))


@dataclass(frozen=True, slots=True)
class _Consent:
    signed: SignedIn
    pending: PendingRequest
    user: User


async def _load_consent(request: Request, *, to_approve: bool) -> _Consent | Response:
    """What the consent step needs, or the page to show instead: the code step when this session
    entered no code, sign-in when it is not signed in (or, ``to_approve``, signed in longer ago
    than ``approval_max_age``), and the refusal when the code is no longer actionable (decided,
    expired)."""
    service = _service(request)
    code = _entered_code(request)
    if code is None:
        return redirect(page_url(request, "device"))
    signed = await _signed_in(request, service)
    if signed is None or (to_approve and not signed.may_approve):
        return redirect(page_url(request, "device_signin"))
    pending = await service.verification.pending_request(code)
    if pending is None:
        return await _code_refused(request)
    user = await service.accounts.get_user(signed.user_id)
    if user is None:
        _forget_sign_in(request)
        return redirect(page_url(request, "device_signin"))
    return _Consent(signed, pending, user)


async def consent_form(request: Request) -> Response:
    """GET /device/consent. Reopening it after a decision (Back, reload, an old link) finds the
    code no longer actionable and shows the refusal: a decided code cannot be revived. Its
    Approve button needs a fresh password, so a stale sign-in is sent to enter it first."""
    loaded = await _load_consent(request, to_approve=True)
    if isinstance(loaded, Response):
        return loaded
    return _consent_page(request, loaded.pending, loaded.user)


async def consent_submit(request: Request) -> Response:
    """POST /device/consent: record Approve or Deny. The result page is shown only after the
    service stored the decision; its compare-and-set makes a second decision of the same code
    (Back, another tab, a race) fail instead of overwrite (RFC 8628 §5.4).

    Approve with a sign-in older than ``approval_max_age`` records nothing and asks for the
    password again; Deny needs only a live sign-in (it gives nothing away)."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    csrf_ok = csrf.is_valid(request.session, form.get(csrf.FIELD))
    loaded = await _load_consent(request, to_approve=False)
    if isinstance(loaded, Response):
        return loaded
    pending = loaded.pending
    if not csrf_ok:
        return _consent_page(request, pending, loaded.user, alert=FORM_EXPIRED, status=403)
    # The session holds one code; a consent page from an older tab must not approve the newer code
    # the person never saw on this page.
    if form.get("user_code") != pending.user_code:
        return _consent_page(request, pending, loaded.user, alert=OTHER_TAB, status=409)
    decision = _DECISIONS.get(form.get("decision", ""))
    if decision is None:
        return _consent_page(request, pending, loaded.user, alert=NO_DECISION, status=400)
    if decision is Decision.APPROVE and not loaded.signed.may_approve:
        return redirect(page_url(request, "device_signin"))
    outcome = await _service(request).verification.record_decision(
        pending.user_code, decision, loaded.signed.user_id, loaded.signed.auth_time,
        session_id=_sign_in_id(request),
    )
    if outcome is DecisionOutcome.SIGN_IN_AGAIN:  # went stale or ended since it was read
        return redirect(page_url(request, "device_signin"))
    if outcome is not DecisionOutcome.RECORDED:
        return await _code_refused(request)
    metrics = request.app.state.metrics
    (metrics.approvals if decision is Decision.APPROVE else metrics.denials).inc()
    request.session[RESULT] = {"decision": decision.value, "client_name": pending.client_name}
    return redirect(page_url(request, "device_done"))


async def done(request: Request) -> Response:
    """GET /device/done: "Device connected" or "Request denied", after the decision was stored."""
    result = request.session.get(RESULT)
    if not isinstance(result, dict) or result.get("decision") not in _DECISIONS:
        return redirect(page_url(request, "device"))
    client_name = result.get("client_name")
    return render(request, "result.html", {
        "approved": result["decision"] == Decision.APPROVE.value,
        "client_name": client_name if isinstance(client_name, str) else "",
        "start": page_url(request, "device"),
    })


async def signout(request: Request) -> Response:
    """POST /device/signout: for a shared or borrowed browser. Ends the sign-in everywhere."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    if not csrf.is_valid(request.session, form.get(csrf.FIELD)):
        return await _code_page(request, alert=FORM_EXPIRED, status=403)
    # Ended in storage, not only forgotten here: a copy of this cookie signs no one in either.
    await _service(request).sessions.end(request.session.get(SIGN_IN))
    _forget_sign_in(request)
    request.session.pop(USER_CODE, None)
    request.session.pop(RESULT, None)
    request.session.pop(RETURN_TO, None)
    csrf.rotate(request.session)
    return redirect(page_url(request, "device"))


routes: list[BaseRoute] = [
    Route("/device", code_form, methods=["GET"], name="device"),
    Route("/device", code_submit, methods=["POST"], name="device_submit"),
    Route("/device/signin", signin_form, methods=["GET"], name="device_signin"),
    Route("/device/signin", signin_submit, methods=["POST"], name="device_signin_submit"),
    Route("/device/consent", consent_form, methods=["GET"], name="device_consent"),
    Route("/device/consent", consent_submit, methods=["POST"], name="device_consent_submit"),
    Route("/device/done", done, methods=["GET"], name="device_done"),
    Route("/device/signout", signout, methods=["POST"], name="device_signout"),
]
