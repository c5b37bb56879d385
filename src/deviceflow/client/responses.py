"""Reading the server's answers: a JSON (or form-encoded) object, an RFC 6749 §5.2 error object,
or the success object of a token or device authorization response."""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import parse_qsl

from deviceflow.client.errors import OAuthError, ServerResponseError, oauth_error_for
from deviceflow.client.messages import HttpResponse, TransportFailure
from deviceflow.client.tokens import strip_control

__all__ = ["describe", "error_from", "json_object", "success_object"]


def describe(reply: HttpResponse | TransportFailure, url: str) -> str:
    """What went wrong with a request, in one sentence."""
    if isinstance(reply, TransportFailure):
        return f"Could not connect to {url} ({reply.reason})."
    return f"The server at {url} answered HTTP {reply.status}."


def json_object(response: HttpResponse) -> Mapping[str, object] | None:
    """The body as an object: JSON, or form-encoded (GitHub without an Accept header)."""
    content_type = (response.header("Content-Type") or "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(response.body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return None
    try:
        value = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def error_from(response: HttpResponse, aliases: dict[str, str]) -> OAuthError | None:
    """RFC 6749 §5.2 error object. Looked for at any status: GitHub sends its device flow errors
    with HTTP 200 ("Authorizing OAuth apps", "Error codes for the device flow"), Google sends
    authorization_pending as 428 and slow_down as 403 (Google's device flow docs)."""
    data = json_object(response)
    if data is None:
        return None
    error = data.get("error")
    if not isinstance(error, str) or not error:
        return None
    description = data.get("error_description")
    return oauth_error_for(
        strip_control(error)[:100],
        strip_control(description)[:300] if isinstance(description, str) else None,
        aliases,
    )


def success_object(
    response: HttpResponse, url: str, aliases: dict[str, str]
) -> Mapping[str, object]:
    error = error_from(response, aliases)
    if error is not None:
        raise error
    if response.status != 200:
        raise ServerResponseError(describe(response, url))
    data = json_object(response)
    if data is None:
        raise ServerResponseError(f"The server at {url} did not answer with a JSON object.")
    return data
