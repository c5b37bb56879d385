"""Liveness for load balancers: answers without touching the database."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..responses import json_response


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"}, no_store=True)


routes = [Route("/healthz", healthz, methods=["GET"])]
