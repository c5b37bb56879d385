"""The Python floor: a bare Starlette endpoint that parses the same form as ``POST /token`` and
returns the same JSON (and headers) as deviceflow's ``authorization_pending`` answer, with no
storage, no service layer and no middleware.

    uvicorn bench.floor_app:app  (or: granian --interface asgi bench.floor_app:app)

Whatever deviceflow spends above this is its own cost; what is below it belongs to the ASGI
server, Starlette and the interpreter.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PENDING = json.dumps(
    {
        "error": "authorization_pending",
        "error_description": "The user has not yet completed authorization.",
    },
    separators=(",", ":"),
).encode()
HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def token(request: Request) -> Response:
    body = await request.body()
    params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=256))
    if "device_code" not in params or "client_id" not in params:
        return Response(b'{"error":"invalid_request"}', 400, HEADERS, "application/json")
    return Response(PENDING, 400, HEADERS, "application/json")


app = Starlette(routes=[Route("/token", token, methods=["POST"])])
