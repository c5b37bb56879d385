"""The second step of the shared sign-in (the verification pages, "Your devices", the account
pages and /authorize all sign in through ``/device/signin``): after a right password, a person
with an authenticator app gives a **Verification code** (a current TOTP code, RFC 6238, or one
of their recovery codes) and presses **Verify**.

    GET/POST /device/signin/verify

The password step leaves only ``SECOND_FACTOR`` (who, when) in the signed cookie; no sign-in
exists until this step passes, and the waiting state lapses after ``PENDING_SECONDS``. Codes
are judged by the service under the account's ``mfa_per_account`` budget, each accepted once.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ...service import FactorRefused, Throttled
from .. import csrf
from ..pages import page_url, redirect, render
from .browser import FORM_EXPIRED, SECOND_FACTOR
from .browser import form as _form
from .browser import service as _service
from .browser import wait_message as _wait_message
from .verification import complete_sign_in

PENDING_SECONDS = 5 * 60
"""How long a right password waits for its second factor."""

CODE_MISSING = "Enter the code from your authenticator app, or a recovery code."
CODE_REFUSED = (
    "That code didn't work. Enter the code your authenticator app shows now (each code works "
    "once), or one of your recovery codes."
)
ERROR_ID = "otp_error"
_MAX_CODE = 32


def _pending_user(request: Request) -> str | None:
    """The user whose password was right, if that was less than ``PENDING_SECONDS`` ago."""
    pending = request.session.get(SECOND_FACTOR)
    if not isinstance(pending, dict):
        return None
    user_id, at = pending.get("user_id"), pending.get("at")
    if not isinstance(user_id, str) or not isinstance(at, int | float):
        return None
    if not 0 <= _service(request).now() - at < PENDING_SECONDS:
        request.session.pop(SECOND_FACTOR, None)
        return None
    return user_id


def _page(request: Request, *, alert: str | None = None, status: int = 200,
          retry_after: int | None = None) -> Response:
    return render(request, "verify.html", {
        "alert": alert,
        "alert_id": ERROR_ID if alert else None,
        "action": page_url(request, "device_signin_verify"),
        "restart": page_url(request, "device_signin"),
    }, status=status, headers={"Retry-After": str(retry_after)} if retry_after else None)


async def verify_form(request: Request) -> Response:
    """GET /device/signin/verify."""
    if _pending_user(request) is None:
        return redirect(page_url(request, "device_signin"))
    return _page(request)


async def verify_submit(request: Request) -> Response:
    """POST /device/signin/verify: the code is spent from the account's budget before it is
    judged; a right one starts the sign-in."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    if not csrf.is_valid(request.session, form.get(csrf.FIELD)):
        return _page(request, alert=FORM_EXPIRED, status=403)
    user_id = _pending_user(request)
    if user_id is None:
        return redirect(page_url(request, "device_signin"))
    code = form.get("otp", "")[:_MAX_CODE]
    if not code.strip():
        return _page(request, alert=CODE_MISSING, status=400)
    result = await _service(request).factors.verify(user_id, code)
    if isinstance(result, Throttled):
        return _page(request, alert=_wait_message(result.retry_after), status=429,
                     retry_after=result.retry_after)
    if isinstance(result, FactorRefused):
        return _page(request, alert=CODE_REFUSED, status=400)
    # RFC 8176 §2: the password and a one-time code (app or recovery code), two factors.
    return await complete_sign_in(request, user_id, amr=("pwd", "otp", "mfa"))


routes: list[BaseRoute] = [
    Route("/device/signin/verify", verify_form, methods=["GET"], name="device_signin_verify"),
    Route("/device/signin/verify", verify_submit, methods=["POST"],
          name="device_signin_verify_submit"),
]
