""""Your devices": the devices signed in to the person's account, each with a **Sign out**
button, and "Sign out all devices"; below them the applications the person has allowed
(remembered consent, issue 11), each with a **Withdraw** button.

    GET  /account/devices             the lists ("Signed out" after a sign-out, role=status)
    POST /account/devices/signout     one device (its family id in the form)
    POST /account/devices/signout-all every device
    POST /account/devices/withdraw    forget one application's consent (its client id in the
                                      form) and sign out its devices of this person

Same rules as the verification pages, whose sign-in this page shares: no JavaScript, plain POST
forms with the CSRF field, POST-redirect-GET, errors in ``role="alert"``. A sign-in is needed to
see the list (the browser is sent to sign in and back); signing out also needs the password
entered within ``approval_max_age``, as approving does, so a signed-in browser left behind
cannot sign the owner's devices out (or learn which are theirs and keep one) for long. Signing
out revokes the device's refresh-token family (RFC 7009 §2.1: with its access tokens, through
``service.revocation``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import csrf
from ..pages import page_url, redirect, render
from .browser import FORM_EXPIRED
from .browser import forget_sign_in as _forget_sign_in
from .browser import form as _form
from .browser import service as _service
from .browser import signed_in as _signed_in
from .verification import sign_in_then

PAGE = "account_devices"
NOTICE = "devices_notice"
"""Session key of the "Signed out" message shown once by the next GET (POST-redirect-GET)."""

SIGNED_OUT = "Signed out."
SIGNED_OUT_ALL = "Signed out all devices."
NOT_YOURS = (
    "That device isn't signed in to your account any more. It may have been signed out already."
)
NOTHING_TO_SIGN_OUT = "No devices are signed in to your account."
WITHDRAWN = "Permission withdrawn. Its devices were signed out: {count}."
NOT_ALLOWED = (
    "That application isn't allowed on your account any more. It may have been withdrawn already."
)

_MAX_USER_AGENT = 512


async def _page(request: Request, *, alert: str | None = None, status: int = 200) -> Response:
    service = _service(request)
    signed = await _signed_in(request, service)
    if signed is None:
        return sign_in_then(request, PAGE)
    user = await service.accounts.get_user(signed.user_id)
    if user is None:
        _forget_sign_in(request)
        return sign_in_then(request, PAGE)
    notice = request.session.pop(NOTICE, None)
    devices = await service.devices.list(signed.user_id)
    consents = await service.consents.list(signed.user_id)
    return render(request, "devices.html", {
        "user": user,
        "devices": [{
            "family_id": d.family_id,
            "client_name": d.client_name,
            "scopes": d.scopes,
            "approved_at": d.approved_at,
            "last_used_at": d.last_used_at,
            "ip_address": d.ip_address,
            "user_agent": (d.user_agent or "")[:_MAX_USER_AGENT],
        } for d in devices],
        "consents": consents,
        "withdraw": page_url(request, "account_consent_withdraw"),
        "notice": notice if alert is None and isinstance(notice, str) else None,
        "alert": alert,
        "fresh": signed.may_approve,
        "signout_one": page_url(request, "account_devices_signout"),
        "signout_all": page_url(request, "account_devices_signout_all"),
        "signout_action": page_url(request, "device_signout"),
        "start": page_url(request, "device"),
        "security": page_url(request, "account_security"),
    }, status=status)


async def devices(request: Request) -> Response:
    """GET /account/devices."""
    return await _page(request)


async def _signed_out(request: Request, *, every: bool) -> Response:
    form = await _form(request)
    if isinstance(form, Response):
        return form
    # CSRF first: a forged post revokes nothing (and learns nothing).
    if not csrf.is_valid(request.session, form.get(csrf.FIELD)):
        return await _page(request, alert=FORM_EXPIRED, status=403)
    service = _service(request)
    signed = await _signed_in(request, service)
    if signed is None or not signed.may_approve:
        return sign_in_then(request, PAGE)
    if every:
        if not await service.devices.sign_out_all(signed.user_id):
            return await _page(request, alert=NOTHING_TO_SIGN_OUT, status=409)
        request.session[NOTICE] = SIGNED_OUT_ALL
    else:
        # The family id comes from the form: the service signs it out only if it is this
        # person's own, so an edited id reaches nobody else's device.
        if not await service.devices.sign_out(signed.user_id, form.get("family_id", "")):
            return await _page(request, alert=NOT_YOURS, status=409)
        request.session[NOTICE] = SIGNED_OUT
    return redirect(page_url(request, PAGE))


async def withdraw(request: Request) -> Response:
    """POST /account/devices/withdraw: the **Withdraw** button of one allowed application. Like
    signing out, it needs the password entered within ``approval_max_age``; the client id comes
    from the form, and only the person's own consent is ever withdrawn (storage deletes it by
    person and client)."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    if not csrf.is_valid(request.session, form.get(csrf.FIELD)):
        return await _page(request, alert=FORM_EXPIRED, status=403)
    service = _service(request)
    signed = await _signed_in(request, service)
    if signed is None or not signed.may_approve:
        return sign_in_then(request, PAGE)
    done = await service.consents.withdraw(signed.user_id, form.get("client_id", ""))
    if done is None:
        return await _page(request, alert=NOT_ALLOWED, status=409)
    request.session[NOTICE] = WITHDRAWN.format(count=done.devices_signed_out)
    return redirect(page_url(request, PAGE))


async def signout_one(request: Request) -> Response:
    """POST /account/devices/signout: the **Sign out** button of one row."""
    return await _signed_out(request, every=False)


async def signout_all(request: Request) -> Response:
    """POST /account/devices/signout-all: "Sign out all devices"."""
    return await _signed_out(request, every=True)


routes: list[BaseRoute] = [
    Route("/account/devices", devices, methods=["GET"], name=PAGE),
    Route("/account/devices/signout", signout_one, methods=["POST"],
          name="account_devices_signout"),
    Route("/account/devices/signout-all", signout_all, methods=["POST"],
          name="account_devices_signout_all"),
    Route("/account/devices/withdraw", withdraw, methods=["POST"],
          name="account_consent_withdraw"),
]
