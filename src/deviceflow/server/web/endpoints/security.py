"""The account's sign-in security: enrolling an authenticator app (TOTP, RFC 6238) as a second
factor, and its recovery codes.

    GET  /account/security               whether a second factor is on, recovery codes left
    POST /account/security/totp          start enrolment: a new secret, pending
    GET  /account/security/totp          the QR code (the ``otpauth://`` URI as inline SVG,
                                         drawn on the server: the pages run no script) and
                                         the secret as text, and the confirmation form
    POST /account/security/totp/confirm  a current **Verification code** turns the factor on;
                                         the answer shows the recovery codes, once

Same rules as "Your devices": a sign-in is needed to see the page, changing it needs the
password entered within ``approval_max_age``; plain POST forms with the CSRF field. The recovery
codes are only in the body of the confirming POST's answer (``Cache-Control: no-store``):
storage keeps their HMACs, the cookie never holds them.
"""

from __future__ import annotations

import segno
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ...service import FactorRefused, Throttled
from .. import csrf
from ..pages import branding, page_url, redirect, render
from .browser import FORM_EXPIRED
from .browser import form as _form
from .browser import service as _service
from .browser import signed_in as _signed_in
from .browser import wait_message as _wait_message
from .verification import sign_in_then

PAGE = "account_security"
ERROR_ID = "otp_error"

ALREADY_ON = "An authenticator app is already set up for your account."
NO_ENROLMENT = "Start setting up your authenticator app again."
CODE_REFUSED = (
    "That code didn't work. Check that the app shows the account for this site, and enter the "
    "code it shows now."
)
CODE_MISSING = "Enter the 6-digit code your authenticator app shows."
_MAX_CODE = 32


def qr_svg(uri: str) -> Markup:
    """The ``otpauth://`` URI as an inline SVG QR code: presentation attributes only (no
    ``style``), dark on a light quiet zone so it scans in either colour scheme."""
    svg = segno.make(uri, error="m", micro=False).svg_inline(
        scale=4, dark="#000", light="#fff", title="QR code for your authenticator app",
        svgclass="qr", lineclass=None)
    # segno's own markup: the URI is only path data, the title a constant; nothing typed by
    # anyone reaches it as text.
    return Markup(svg.replace("<svg ", '<svg role="img" ', 1))  # noqa: S704


async def _account(request: Request) -> tuple[str, str] | Response:
    """(user id, username) of the signed-in person, or the way to sign in first."""
    service = _service(request)
    signed = await _signed_in(request, service)
    if signed is None:
        return sign_in_then(request, PAGE)
    user = await service.accounts.get_user(signed.user_id)
    if user is None:
        return sign_in_then(request, PAGE)
    return user.user_id, user.username


async def _fresh_account(request: Request) -> tuple[str, str] | Response:
    """As ``_account``, and the password entered recently (changing how one signs in)."""
    service = _service(request)
    signed = await _signed_in(request, service)
    if signed is None or not signed.may_approve:
        return sign_in_then(request, PAGE)
    return await _account(request)


async def security(request: Request) -> Response:
    """GET /account/security."""
    account = await _account(request)
    if isinstance(account, Response):
        return account
    user_id, _ = account
    service = _service(request)
    status = await service.factors.status(user_id)
    return render(request, "security.html", {
        "user": await service.accounts.get_user(user_id),
        "signout_action": page_url(request, "device_signout"),
        "enrolled": status.enrolled,
        "recovery_left": status.recovery_codes_left,
        "begin": page_url(request, "account_security_totp_begin"),
        "devices": page_url(request, "account_devices"),
    })


async def totp_begin(request: Request) -> Response:
    """POST /account/security/totp: a new pending secret, then its page."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    if not csrf.is_valid(request.session, form.get(csrf.FIELD)):
        return redirect(page_url(request, PAGE))
    account = await _fresh_account(request)
    if isinstance(account, Response):
        return account
    user_id, username = account
    started = await _service(request).factors.begin_totp(
        user_id, username, branding(request).site_name)
    if started is None:
        return await _setup_page(request, alert=ALREADY_ON, status=409)
    return redirect(page_url(request, "account_security_totp"))


async def _setup_page(request: Request, *, alert: str | None = None,
                      status: int = 200, retry_after: int | None = None) -> Response:
    account = await _fresh_account(request)
    if isinstance(account, Response):
        return account
    user_id, username = account
    service = _service(request)
    pending = await service.factors.pending_totp(user_id, username, branding(request).site_name)
    if pending is None:
        if alert is None:
            return redirect(page_url(request, PAGE))
        return render(request, "totp_setup.html", {
            "enrolment": None, "alert": alert, "alert_id": None,
            "back": page_url(request, PAGE),
        }, status=status)
    secret = pending.secret
    return render(request, "totp_setup.html", {
        "enrolment": {
            "qr": qr_svg(pending.uri),
            "secret": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
        },
        "alert": alert,
        "alert_id": ERROR_ID if alert else None,
        "action": page_url(request, "account_security_totp_confirm"),
        "back": page_url(request, PAGE),
    }, status=status, headers={"Retry-After": str(retry_after)} if retry_after else None)


async def totp_setup(request: Request) -> Response:
    """GET /account/security/totp."""
    return await _setup_page(request)


async def totp_confirm(request: Request) -> Response:
    """POST /account/security/totp/confirm: a current code turns the factor on; the answer
    shows the recovery codes once."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    if not csrf.is_valid(request.session, form.get(csrf.FIELD)):
        return await _setup_page(request, alert=FORM_EXPIRED, status=403)
    account = await _fresh_account(request)
    if isinstance(account, Response):
        return account
    user_id, _ = account
    code = form.get("otp", "")[:_MAX_CODE]
    if not code.strip():
        return await _setup_page(request, alert=CODE_MISSING, status=400)
    result = await _service(request).factors.confirm_totp(user_id, code)
    if isinstance(result, Throttled):
        return await _setup_page(request, alert=_wait_message(result.retry_after), status=429,
                                 retry_after=result.retry_after)
    if isinstance(result, FactorRefused):
        return await _setup_page(request, alert=CODE_REFUSED, status=400)
    return render(request, "recovery_codes.html", {
        "codes": result.recovery_codes,
        "back": page_url(request, PAGE),
    })


routes: list[BaseRoute] = [
    Route("/account/security", security, methods=["GET"], name=PAGE),
    Route("/account/security/totp", totp_begin, methods=["POST"],
          name="account_security_totp_begin"),
    Route("/account/security/totp", totp_setup, methods=["GET"], name="account_security_totp"),
    Route("/account/security/totp/confirm", totp_confirm, methods=["POST"],
          name="account_security_totp_confirm"),
]
