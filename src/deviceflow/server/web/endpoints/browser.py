"""What the browser pages (the verification pages, "Your devices") share: the session keys,
this request's service and sign-in, the form reader, and the wording of times and waits.

The sign-in lives on the server (``service.sessions``): the signed cookie carries only its random
id, read back from storage on every request that relies on it. The rest of the cookie is page
state: a random id for the per-session code budget, the code this session entered, the CSRF
token, and the last result."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from ....protocol.errors import InvalidRequestError
from ....protocol.params import FormParams
from ...service import DeviceFlowService, SignedIn
from ..pages import page_url, render
from ..requests import read_form

# --- session keys ------------------------------------------------------------------------------

SESSION_ID = "sid"
SIGN_IN = "signin"
"""The random id of the server-side sign-in; never who or when."""
USER_CODE = "user_code"
RESULT = "result"
SECOND_FACTOR = "second_factor"
"""Who gave the right password and when, while the sign-in waits for their second factor (the
cookie is signed: it cannot be forged; it signs no one in by itself)."""
RETURN_TO = "return_to"
"""A page to return to after signing in, by route name (never a URL: no open redirect)."""

FORM_EXPIRED = "This form has expired or didn't come from this site. Please try again."
NO_DECISION = "Choose Approve or Deny."


def service(request: Request) -> DeviceFlowService:
    found = request.app.state.service
    if not isinstance(found, DeviceFlowService):
        raise TypeError("app.state.service is not a DeviceFlowService")
    return found


def session_id(request: Request) -> str:
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


async def signed_in(request: Request, flow: DeviceFlowService) -> SignedIn | None:
    """This browser's live sign-in, read from storage: a revoked, expired or unknown one is
    dropped from the cookie."""
    cached = getattr(request.state, _SIGNED_IN_STATE, None)
    if isinstance(cached, _Read):
        return cached.signed
    signed = await flow.sessions.current(request.session.get(SIGN_IN))
    if signed is None:
        request.session.pop(SIGN_IN, None)
    setattr(request.state, _SIGNED_IN_STATE, _Read(signed))
    return signed


def sign_in_changed(request: Request) -> None:
    """Read the sign-in again when next asked (after signing in)."""
    setattr(request.state, _SIGNED_IN_STATE, None)


def sign_in_id(request: Request) -> str:
    """The cookie's sign-in id ("" when none: no stored sign-in has that hash)."""
    value = request.session.get(SIGN_IN)
    return value if isinstance(value, str) else ""


def forget_sign_in(request: Request) -> None:
    request.session.pop(SIGN_IN, None)
    setattr(request.state, _SIGNED_IN_STATE, _Read(None))


def entered_code(request: Request) -> str | None:
    code = request.session.get(USER_CODE)
    return code if isinstance(code, str) and code else None


async def form(request: Request) -> FormParams | Response:
    """The posted form, or the page that says it could not be read."""
    try:
        return await read_form(request)
    except InvalidRequestError:
        return render(request, "error.html", {
            "title": "Something went wrong",
            "message": "That form couldn't be read. Please start again.",
            "start": page_url(request, "device"),
        }, status=400)


# --- wording -----------------------------------------------------------------------------------


def wait_message(seconds: int) -> str:
    if seconds < 60:
        amount, unit = seconds, "second"
    else:
        amount, unit = math.ceil(seconds / 60), "minute"
    plural = "" if amount == 1 else "s"
    return f"Too many attempts. Please wait {amount} {unit}{plural} and try again."


def ago(seconds: float) -> str:
    if seconds < 60:
        return "less than a minute ago"
    minutes = int(seconds // 60)
    return f"{minutes} minute{'' if minutes == 1 else 's'} ago"


def within(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute{'' if minutes == 1 else 's'}"
