"""Last-resort error handling: every failure becomes an RFC-shaped answer, never a traceback."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

from ...protocol.errors import OAuthError, ServerError, TemporarilyUnavailableError
from ...storage.interface import StorageUnavailableError
from .responses import json_response, oauth_error_response

log = logging.getLogger("deviceflow.web")


async def oauth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    return oauth_error_response(exc)


_PAGE_MESSAGES = {
    404: ("Page not found", "There is no page at this address."),
    405: ("Not allowed", "This page cannot be used that way."),
    500: ("Something went wrong", "The sign-in service had a problem. Please try again."),
    503: ("Temporarily unavailable", "The sign-in service is busy. Please try again shortly."),
}


def _route_path(request: Request) -> str | None:
    """The path below the issuer's path (``app.state.issuer_path``), or None when the request
    is outside it."""
    prefix = getattr(request.app.state, "issuer_path", "")
    path = request.url.path
    if not prefix:
        return path
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix):]
    return None


def _is_page(request: Request) -> bool:
    path = _route_path(request)
    return path is not None and (
        path in ("/device", "/authorize") or path.startswith(("/device/", "/authorize/")))


def _error_page(request: Request, status: int, headers: dict[str, str]) -> Response:
    """The verification pages answer errors as pages with their security headers."""
    from .pages import render

    title, message = _PAGE_MESSAGES.get(status, ("Request refused", "The request was refused."))
    try:
        return render(request, "error.html",
                      {"title": title, "message": message,
                       "start": getattr(request.app.state, "issuer_path", "") + "/device"},
                      status=status, headers=headers)
    except Exception:  # no session (it failed itself): plain text, still no traceback
        log.exception("could not render the error page")
        return PlainTextResponse(message, status_code=status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if _is_page(request):
        return _error_page(request, exc.status_code, headers)
    path = _route_path(request) or ""
    if path.startswith(("/token", "/device_authorization", "/userinfo")):
        body = {"error": "invalid_request", "error_description": exc.detail}
        return json_response(body, exc.status_code, headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=headers)


async def client_disconnect(request: Request, exc: Exception) -> Response:
    """The client went away mid-request (a closed connection, a cancelled poll): nobody is left
    to answer, and it is not our failure, so no traceback. The response is dropped by the
    server; its status only tells the access log what happened."""
    assert isinstance(exc, ClientDisconnect)
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=400)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """Anything else is our bug or an outage: log it with the traceback, answer without one."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    error: OAuthError = ServerError()
    if isinstance(exc, OSError | TimeoutError | StorageUnavailableError):
        error = TemporarilyUnavailableError()
    if _is_page(request):
        return _error_page(request, error.status_code, {})
    return oauth_error_response(error)
