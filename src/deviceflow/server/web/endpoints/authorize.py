"""Browser authorization (RFC 6749 §4.1 with PKCE, RFC 7636): the authorization endpoint and its
consent page, on the same sign-in, session and page rules as the verification pages.

    GET  /authorize          check the request; an untrusted client or redirect URI gets a page
                             and goes nowhere (§4.1.2.1), any other error goes back to the client
    GET  /authorize/consent  who asks, for what, and where the browser goes next; Approve or Deny
    POST /authorize/consent  the decision: back to the client's redirect URI with ``code`` (or
                             ``error=access_denied``), ``state`` and ``iss`` (RFC 9207)

Remembered consent (issue 11) follows the device flow's rule: when the person already granted
this client every requested scope, the consent page is a short confirmation (the client, where
the browser goes next, Approve / Deny) without the permissions list; asking for more shows the
list with the new scopes marked. It is never approved without a page: RFC 6749 §10.2 says the
server "SHOULD NOT process repeated authorization requests automatically (without active
end-user interaction)" when it cannot authenticate the client (our browser clients are public,
PKCE only), and OIDC ``prompt=none`` is refused (``consent_required``), so every code follows a
click here.

Signing in goes through ``/device/signin`` (``verification.sign_in_then``) and comes back here;
approving needs a password entered within ``approval_max_age``, as approving a device does.
The request waits in the signed session cookie between the pages, with a random id that the
consent form carries, so an older tab cannot approve a newer request it never showed.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ....protocol.consent import covers, new_scopes
from ....protocol.grants.authorization_code import (
    AuthorizationRequest,
    NoRedirect,
    RedirectError,
)
from ....protocol.grants.refresh_token import issues_refresh_token
from ....protocol.models import Client, User
from ....protocol.scopes import OFFLINE_ACCESS, describe_scope
from .. import csrf
from ..pages import SECURITY_HEADERS, page_url, redirect, render
from ..requests import origin
from .browser import FORM_EXPIRED, NO_DECISION
from .browser import forget_sign_in as _forget_sign_in
from .browser import form as _form
from .browser import service as _service
from .browser import signed_in as _signed_in
from .verification import sign_in_then

PAGE = "authorize_consent"
PENDING = "authorize"
"""Session key of the request waiting for the person's decision."""
REQUEST_ID = "request_id"

NOTHING_WAITING = ("No sign-in request is waiting here any more. Go back to the application "
                   "and start again.")
OTHER_TAB = ("Another sign-in request was started in this browser since this page was shown. "
             "Go back to the application and start again.")
_MAX_USER_AGENT = 512


def _refused(request: Request, message: str, status: int = 400) -> Response:
    """RFC 6749 §4.1.2.1: tell the person, send the browser nowhere."""
    return render(request, "error.html", {"title": "This sign-in can't go on",
                                          "message": message, "start": None}, status=status)


def _pending(request: Request) -> tuple[AuthorizationRequest, str] | None:
    stored = request.session.get(PENDING)
    pending = AuthorizationRequest.from_session(stored)
    if pending is None or not isinstance(stored, dict):
        return None
    rid = stored.get(REQUEST_ID)
    return (pending, rid) if isinstance(rid, str) else None


def _form_action(redirect_uri: str) -> str:
    """CSP ``form-action`` for the consent page: our own origin, and the redirect URI's, since
    browsers apply it to the redirect that follows the form's POST (CSP Level 3 §6.4.2)."""
    parts = urlsplit(redirect_uri)
    target = f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"
    policy = SECURITY_HEADERS["Content-Security-Policy"]
    return policy.replace("form-action 'self'", f"form-action 'self' {target}")


async def authorize(request: Request) -> Response:
    """GET /authorize (RFC 6749 §4.1.1)."""
    service = _service(request)
    try:
        pending = await service.authorization.check(request.query_params.multi_items())
    except NoRedirect as refusal:
        return _refused(request, str(refusal))
    except RedirectError as error:
        return redirect(service.authorization.error_uri(
            error.redirect_uri, error.state, error.error, error.description))
    request.session[PENDING] = {**pending.to_session(), REQUEST_ID: secrets.token_urlsafe(16)}
    signed = await _signed_in(request, service)
    if signed is None or not signed.may_approve:
        return sign_in_then(request, PAGE)
    return redirect(page_url(request, PAGE))


async def _consent_page(request: Request, pending: AuthorizationRequest, rid: str,
                        client: Client, user: User, *, alert: str | None = None,
                        status: int = 200) -> Response:
    service = _service(request)
    consent = await service.consents.remembered(user.user_id, client.client_id)
    added = frozenset(new_scopes(consent, pending.scope)) if consent else frozenset()
    scopes = [(describe_scope(s), s in added) for s in pending.scope if s != OFFLINE_ACCESS]
    target = urlsplit(pending.redirect_uri)
    return render(request, "authorize.html", {
        "client_name": client.name,
        "scopes": scopes,
        "confirm_only": covers(consent, pending.scope),
        "any_new": bool(added),
        "stay_signed_in_new": OFFLINE_ACCESS in added,
        "consented_at": consent.updated_at if consent else None,
        "stay_signed_in": issues_refresh_token(client, pending.scope,
                                               service.policy.grant_types),
        "destination": target.netloc or f"{target.scheme}:",
        "request_id": rid,
        "user": user,
        "alert": alert,
        "action": page_url(request, "authorize_consent_submit"),
        "signout_action": page_url(request, "device_signout"),
    }, status=status,
        headers={"Content-Security-Policy": _form_action(pending.redirect_uri)})


async def consent_form(request: Request) -> Response:
    """GET /authorize/consent."""
    service = _service(request)
    waiting = _pending(request)
    if waiting is None:
        return _refused(request, NOTHING_WAITING)
    pending, rid = waiting
    signed = await _signed_in(request, service)
    if signed is None or not signed.may_approve:
        return sign_in_then(request, PAGE)
    user = await service.accounts.get_user(signed.user_id)
    if user is None:
        _forget_sign_in(request)
        return sign_in_then(request, PAGE)
    try:
        client = await service.authorization.client(pending)
    except NoRedirect as refusal:
        request.session.pop(PENDING, None)
        return _refused(request, str(refusal))
    return await _consent_page(request, pending, rid, client, user)


async def consent_submit(request: Request) -> Response:
    """POST /authorize/consent: Approve issues a code; Deny sends ``access_denied``. Either way
    the waiting request is used up, so Back and reload cannot decide it twice."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    service = _service(request)
    waiting = _pending(request)
    if waiting is None:
        return _refused(request, NOTHING_WAITING)
    pending, rid = waiting
    signed = await _signed_in(request, service)
    if signed is None:
        return sign_in_then(request, PAGE)
    user = await service.accounts.get_user(signed.user_id)
    if user is None:
        _forget_sign_in(request)
        return sign_in_then(request, PAGE)
    try:
        client = await service.authorization.client(pending)
    except NoRedirect as refusal:
        request.session.pop(PENDING, None)
        return _refused(request, str(refusal))
    if not csrf.is_valid(request.session, form.get(csrf.FIELD)):
        return await _consent_page(request, pending, rid, client, user, alert=FORM_EXPIRED,
                                   status=403)
    if form.get(REQUEST_ID) != rid:
        return _refused(request, OTHER_TAB, status=409)
    decision = form.get("decision")
    if decision not in ("approve", "deny"):
        return await _consent_page(request, pending, rid, client, user, alert=NO_DECISION,
                                   status=400)
    where = origin(request)
    if decision == "deny":
        request.session.pop(PENDING, None)
        return _leave(await service.authorization.deny(pending, user.user_id, where))
    if not signed.may_approve:
        return sign_in_then(request, PAGE)
    request.session.pop(PENDING, None)
    return _leave(await service.authorization.approve(
        pending, user.user_id, signed.auth_time, where, signed.amr))


def _leave(url: str) -> Response:
    """To the client's redirect URI; the code in it must not leak onwards (no Referer) or be
    cached (RFC 6749 §10.5)."""
    response = redirect(url)
    response.headers["Cache-Control"] = "no-store"
    return response


routes: list[BaseRoute] = [
    Route("/authorize", authorize, methods=["GET"], name="authorize"),
    Route("/authorize/consent", consent_form, methods=["GET"], name="authorize_consent"),
    Route("/authorize/consent", consent_submit, methods=["POST"],
          name="authorize_consent_submit"),
]
