"""JSON responses for the protocol endpoints: OAuth errors as data, ``no-store`` everywhere a
token or code may appear (RFC 6749 §5.1, RFC 8628 §3.2)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from starlette.responses import Response

from ...protocol.errors import OAuthError

log = logging.getLogger("deviceflow.web")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_response(
    body: Mapping[str, object] | bytes, status: int = 200,
    headers: Mapping[str, str] | None = None, *, no_store: bool = True,
) -> Response:
    merged = dict(NO_STORE) if no_store else {}
    if headers:
        merged.update(headers)
    return Response(
        body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode(),
        status_code=status,
        headers=merged,
        media_type="application/json",
    )


_ERROR_BODIES: dict[type[OAuthError], bytes] = {}
"""Each error class's body, encoded once: it is fixed per class, and a pending poll's answer is
the most frequent response of all."""


def oauth_error_response(error: OAuthError) -> Response:
    """RFC 6749 §5.2: JSON ``error`` + fixed ``error_description``; never the private detail,
    which goes to the log."""
    if error.detail:
        log.info("oauth error %s: %s", error.error, error.detail)
    body = _ERROR_BODIES.get(type(error))
    if body is None:
        body = _ERROR_BODIES[type(error)] = json.dumps(error.body(), separators=(",", ":")).encode()
    return json_response(body, error.status_code, error.headers())
