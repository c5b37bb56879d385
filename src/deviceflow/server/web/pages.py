"""Rendering the verification pages (RFC 8628 §3.3) with the headers every page carries.

One Jinja2 environment for the process, autoescaping on, and one ``render`` that every HTML
response goes through, so no page can leave without its security headers.
"""

from __future__ import annotations

from collections.abc import Mapping

import jinja2
import markupsafe
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import NoMatchFound

from ...protocol.display import display_safe
from . import csrf, display
from .branding import Branding

SECURITY_HEADERS: Mapping[str, str] = {
    # No script at all, styles only from our own stylesheet, no framing (clickjacking the Approve
    # button is the RFC 8628 §5.4 remote-phishing attack made easier), forms post only to us.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    # The URL may hold a user code (verification_uri_complete, §3.3.1): never leak it onwards.
    "Referrer-Policy": "no-referrer",
    # Pages show codes and who is signed in; Back must re-ask the server, not replay a copy.
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

def _finalize(value: object) -> object:
    """Every ``{{ value }}`` a page shows passes here before autoescape: client names and
    User-Agents are chosen by others, and bidi overrides or zero-width characters in them would
    make the consent page say what they want (``protocol.display``)."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return display_safe(value)
    return value


environment = jinja2.Environment(
    finalize=_finalize,
    loader=jinja2.PackageLoader("deviceflow.server.web", "templates"),
    autoescape=jinja2.select_autoescape(["html"], default_for_string=True, default=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
display.install(environment)

_PLAIN = Branding()


def static_url(request: Request, path: str) -> str:
    """Path of a static file, honouring a root path when the server is mounted below one."""
    try:
        return request.url_for("static", path=path).path
    except NoMatchFound:
        root_path = str(request.scope.get("root_path", ""))
        return root_path + "/static/" + path.lstrip("/")


def _devices_url(request: Request) -> str | None:
    """"Your devices", linked from the signed-in footer and the result page."""
    try:
        return request.url_for("account_devices").path
    except NoMatchFound:
        return None


def branding(request: Request) -> Branding:
    """The operator's site name, brand colour and display time zone (``app.state.branding``,
    set by ``create_app``)."""
    found = getattr(request.app.state, "branding", None)
    return found if isinstance(found, Branding) else _PLAIN


def _brand_stylesheet(request: Request, brand: Branding) -> str | None:
    if brand.brand_css is None:
        return None
    try:
        path = request.url_for("brand_stylesheet").path
    except NoMatchFound:
        return None
    return f"{path}?v={brand.brand_css_version}"


def page_url(request: Request, name: str) -> str:
    """Path (with any root path) of one of the verification routes, by route name."""
    return request.url_for(name).path


def render(
    request: Request,
    template: str,
    context: Mapping[str, object] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template`` with the security headers. Every template gets the session's CSRF token
    (for the hidden field on every form), the stylesheets' URLs, the site name, and how this
    browser reads times (for the ``local_time`` filter)."""
    brand = branding(request)
    values: dict[str, object] = {
        "csrf_field": csrf.FIELD,
        "csrf_token": csrf.token(request.session),
        "stylesheet": static_url(request, "style.css"),
        "brand_stylesheet": _brand_stylesheet(request, brand),
        "site_name": brand.site_name,
        "devices_url": _devices_url(request),
        display.CONTEXT_KEY: display.time_display(
            request.headers.get("accept-language"), brand.time_zone
        ),
    }
    values.update(context or {})
    body = environment.get_template(template).render(values)
    response = HTMLResponse(body, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    if headers:
        response.headers.update(headers)
    return response


async def brand_stylesheet(request: Request) -> Response:
    """GET /brand.css: the operator's brand colour as CSS (404 when none is set). Its URL
    carries a version, so it may be cached for long."""
    css = branding(request).brand_css
    if css is None:
        return Response("Not Found", status_code=404, media_type="text/plain")
    return Response(css, media_type="text/css", headers={
        "Cache-Control": "public, max-age=86400",
        "X-Content-Type-Options": "nosniff",
    })


def redirect(url: str) -> Response:
    """303 See Other: the POST-redirect-GET step, so reloading a result never re-posts a form."""
    response = RedirectResponse(url, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response

