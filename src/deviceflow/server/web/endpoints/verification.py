"""The verification pages: where a person enters a user code, signs in, and approves or denies a
device (RFC 8628 §3.3), with the defences of §5.1 (brute force), §5.4 (remote phishing) and the
code-entry rules of §6.1.

This module only turns HTTP into service calls and results into pages. The rules (which codes are
actionable, the brute-force budgets, single use of a decision) live in the service and below.

Flow, each step a POST answered by a 303 to the next GET (POST-redirect-GET):

    GET/POST /device          enter the code (pre-filled from verification_uri_complete)
    GET/POST /device/signin   skipped while the browser is signed in, unless approving needs
                              the password again (older than ``approval_max_age``)
    GET/POST /device/signin/verify  the second factor, for people who enrolled one
                              (``endpoints.second_factor``): a "Verification code"
    GET/POST /device/consent  who asks, for what, from where and when; Approve or Deny
                              (``endpoints.consent``, with the proximity judgement)
    GET      /device/done     "Device connected" / "Request denied"
    POST     /device/signout

"Your devices" (``endpoints.devices``) shares this sign-in: it sends a browser to
``/device/signin`` with the page to return to (``RETURN_TO``, a route name).

The sign-in lives on the server (``service.sessions``): the signed cookie carries only its random
id, read back from storage on every request that relies on it, so signing out, a password change,
removing the user or ``deviceflow user signout`` ends it for every copy of the cookie. The session
keys and helpers the pages share are in ``endpoints.browser``.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ....protocol.codes import display_user_code
from ....protocol.models import PASSWORD_AMR
from ....protocol.verification import Decision
from ...service import CodeAttempt, CodeRefused, SignInRefused, Throttled
from .. import csrf
from ..pages import page_url, redirect, render
from ..requests import client_ip
from .browser import (
    FORM_EXPIRED,
    RESULT,
    RETURN_TO,
    SECOND_FACTOR,
    SIGN_IN,
    USER_CODE,
)
from .browser import entered_code as _entered_code
from .browser import forget_sign_in as _forget_sign_in
from .browser import form as _form
from .browser import service as _service
from .browser import session_id as _session_id
from .browser import sign_in_changed as _sign_in_changed
from .browser import signed_in as _signed_in
from .browser import wait_message as _wait_message
from .browser import within as _within

RETURN_PAGES = frozenset({"account_devices", "account_security", "authorize_consent"})

# --- what the pages say ------------------------------------------------------------------------

CODE_REFUSED = (
    "That code didn't work. Check the code shown on your device and type it again. "
    "If it still doesn't work, start the sign-in on your device again to get a new code."
)
CODE_MISSING = "Enter the code shown on your device."
SIGN_IN_REFUSED = "That username and password don't match an account here."
CREDENTIALS_MISSING = "Enter your username and password."
SIGN_IN_HELPS = "If you have an account here, sign in first and you can go on entering codes."
SIGN_IN_AGAIN = (
    "Enter your password again to approve this device: you signed in more than {age} ago."
)
SIGN_IN_AGAIN_DEVICES = (
    "Enter your password again to sign out devices: you signed in more than {age} ago."
)
SIGN_IN_AGAIN_FOR = {"authorize_consent": (
    "Enter your password again to approve this sign-in: you signed in more than {age} ago."
), "account_security": (
    "Enter your password again to change how you sign in: you signed in more than {age} ago."
)}
"""The reason to ask again, by the page (``RETURN_TO``) waiting for the sign-in."""

CODE_ERROR_ID = "user_code_error"
"""The id of the code page's alert when the code was wrong: the input's ``aria-describedby``."""

_MAX_ECHO = 64
"""Longest typed code we put back into the input (the value is escaped; this only bounds size)."""
_MAX_USERNAME = 256

_DECISIONS: Mapping[str, Decision] = {d.value: d for d in Decision}


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


# --- page builders -----------------------------------------------------------------------------


async def _code_page(
    request: Request,
    *,
    value: str = "",
    alert: str | None = None,
    status: int = 200,
    retry_after: int | None = None,
    sign_in_link: bool = False,
    code_invalid: bool = False,
) -> Response:
    """The code form. The typed code comes back in its display form (``WDJB-MJHT``) so the
    person can correct it; ``code_invalid`` ties the alert to the input (``aria-invalid``,
    ``aria-describedby``) when it is the code that was wrong."""
    service = _service(request)
    signed = await _signed_in(request, service)
    user = await service.accounts.get_user(signed.user_id) if signed else None
    return render(request, "code.html", {
        "value": display_user_code(value[:_MAX_ECHO]),
        "alert": alert,
        "code_invalid": code_invalid and alert is not None,
        "alert_id": CODE_ERROR_ID if code_invalid else None,
        # Only the global anonymous budget is spent: signing in gives a budget of one's own.
        "sign_in_link": page_url(request, "device_signin") if sign_in_link else None,
        "sign_in_hint": SIGN_IN_HELPS,
        "user": user,
        "action": page_url(request, "device"),
        "signout_action": page_url(request, "device_signout"),
    }, status=status, headers={"Retry-After": str(retry_after)} if retry_after else None)


async def code_refused(request: Request, typed: str = "") -> Response:
    """One page, one status, one message for every refused code: unknown, malformed, expired,
    used, approved or denied elsewhere. The page must be no oracle (RFC 8628 §5.1): what was
    typed comes back the same way whatever the reason."""
    return await _code_page(request, value=typed, alert=CODE_REFUSED, status=400,
                            code_invalid=True)


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


def after_sign_in(request: Request) -> str:
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
        return await _code_page(request, alert=CODE_MISSING, status=400, code_invalid=True)
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
        return await code_refused(request, raw)
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
        return redirect(after_sign_in(request))
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
    if await service.factors.has_factor(result.user_id):
        # The password is right; the sign-in waits for the second factor (``second_factor``).
        request.session[SECOND_FACTOR] = {"user_id": result.user_id, "at": service.now()}
        csrf.rotate(request.session)
        return redirect(page_url(request, "device_signin_verify"))
    return await complete_sign_in(request, result.user_id)


async def complete_sign_in(request: Request, user_id: str,
                           amr: tuple[str, ...] = PASSWORD_AMR) -> Response:
    """Start the server-side sign-in once every step was passed (``amr``: which, RFC 8176),
    and go on to what waits."""
    service = _service(request)
    request.session.pop(SECOND_FACTOR, None)
    # A new server-side sign-in with a new id; the one this browser held (if any) ends with it.
    request.session[SIGN_IN] = await service.sessions.start(
        user_id, replacing=request.session.get(SIGN_IN), amr=amr
    )
    _sign_in_changed(request)  # read again when next asked
    # A new token after authentication: one planted or seen before sign-in is worthless now.
    csrf.rotate(request.session)
    return redirect(after_sign_in(request))


async def done(request: Request) -> Response:
    """GET /device/done: "Device connected" or "Request denied", after the decision was stored."""
    result = request.session.get(RESULT)
    if not isinstance(result, dict) or result.get("decision") not in _DECISIONS:
        return redirect(page_url(request, "device"))
    client_name = result.get("client_name")
    decided_at = result.get("decided_at")
    return render(request, "result.html", {
        "approved": result["decision"] == Decision.APPROVE.value,
        "client_name": client_name if isinstance(client_name, str) else "",
        "decided_at": decided_at if isinstance(decided_at, int | float) else None,
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
    request.session.pop(SECOND_FACTOR, None)
    csrf.rotate(request.session)
    return redirect(page_url(request, "device"))


routes: list[BaseRoute] = [
    Route("/device", code_form, methods=["GET"], name="device"),
    Route("/device", code_submit, methods=["POST"], name="device_submit"),
    Route("/device/signin", signin_form, methods=["GET"], name="device_signin"),
    Route("/device/signin", signin_submit, methods=["POST"], name="device_signin_submit"),
    Route("/device/done", done, methods=["GET"], name="device_done"),
    Route("/device/signout", signout, methods=["POST"], name="device_signout"),
]
