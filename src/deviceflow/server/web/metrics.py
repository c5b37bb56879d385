"""Prometheus metrics (``GET /metrics``, text exposition format 0.0.4), off unless
``enable_metrics``.

One ``Metrics`` per app, in its own registry. With several worker processes
(``deviceflow serve --workers N``) every worker writes its values to memory-mapped files in the
private directory named by ``PROMETHEUS_MULTIPROC_DIR``, which ``deviceflow serve`` creates, and
whichever worker answers a scrape sums them all (``prometheus_client.multiprocess``).

Adding a counter: one line in ``Metrics.__init__`` (``self.x = self._tally(...)``, a name from
the table in docs/operator.md) and one call where it happens (``request.app.state.metrics.x.inc
(label)``); label values must come from a small fixed set (an error code, a grant type), never
from a request's raw input.
"""

from __future__ import annotations

import glob
import hmac
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which every Prometheus reads: our names and labels need no more."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds. Starts at 1 ms: a pending poll takes well under it (docs/benchmarks.md)."""

UNMATCHED = "unmatched"
"""The ``endpoint`` label of a request no route matched: never the raw path (unbounded)."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_CHILDREN = 4096
_WORKER_FILE = re.compile(r"gauge_livesum_(\d+)\.db$")

# prometheus_client leaves these two untyped.
_mark_process_dead = cast(Callable[[int, str], None], multiprocess.mark_process_dead)
_collect_files = cast(Callable[[CollectorRegistry, str], object],
                      multiprocess.MultiProcessCollector)


class Tally:
    """A counter family whose children are cached by label values: ``inc("slow_down")`` is one
    dict lookup and one increment, no label dict built per call."""

    __slots__ = ("_children", "_family")

    def __init__(self, family: Counter) -> None:
        self._family = family
        self._children: dict[tuple[str, ...], Counter] = {}

    def inc(self, *labels: str) -> None:
        child = self._children.get(labels)
        if child is None:
            child = self._family.labels(*labels) if labels else self._family
            self._children[labels] = child
        child.inc()


class _Off(Tally):
    """A tally of a server with metrics off: counts nothing, so costs next to nothing."""

    __slots__ = ()

    def inc(self, *labels: str) -> None:
        return None


class RequestMetrics:
    """Requests and their latency by route template (``/device/consent``), method and status,
    recorded by ``RequestContextMiddleware`` after each response."""

    __slots__ = ("_children", "_latency", "_requests")

    def __init__(self, requests: Counter, latency: Histogram) -> None:
        self._requests = requests
        self._latency = latency
        self._children: dict[tuple[int, str, int], tuple[Counter, Histogram]] = {}

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        # Starlette's router leaves the matched route in the scope; its template bounds the
        # label values, where the raw path would let any client mint new series. Routes are
        # unhashable (they define ``__eq__``) and live as long as the app: keyed by identity.
        route = scope.get("route")
        key = (id(route), scope["method"], status)
        pair = self._children.get(key)
        if pair is None:
            pair = self._child(key, route)
        pair[0].inc()
        pair[1].observe(seconds)

    def _child(self, key: tuple[int, str, int], route: object) -> tuple[Counter, Histogram]:
        _, method, status = key
        endpoint = getattr(route, "path", None) or UNMATCHED
        method = method if method in _METHODS else "OTHER"
        pair = (self._requests.labels(endpoint, method, str(status)),
                self._latency.labels(endpoint, method))
        if len(self._children) < _MAX_CHILDREN:  # the raw method is in the key: keep it bounded
            self._children[key] = pair
        return pair


class Metrics:
    """Every metric the server exports (docs/operator.md, "Metrics and health")."""

    def __init__(self, *, enabled: bool = True, multiprocess_dir: str | None = None) -> None:
        self.enabled = enabled
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=False)
        registry = self.registry
        self.requests = RequestMetrics(
            Counter("deviceflow_http_requests", "HTTP requests answered, by route template, "
                    "method and status.", ("endpoint", "method", "status"), registry=registry),
            Histogram("deviceflow_http_request_duration_seconds", "Time from request to the "
                      "end of the response, by route template and method.",
                      ("endpoint", "method"), buckets=LATENCY_BUCKETS, registry=registry),
        )
        self.polls = self._tally("deviceflow_polls", "Token requests with the device_code grant "
                                 "(RFC 8628 §3.5), by answer: an error code or `success`.",
                                 ("answer",))
        self.approvals = self._tally("deviceflow_approvals", "Device authorizations approved on "
                                     "the consent page.")
        self.denials = self._tally("deviceflow_denials", "Device authorizations denied on the "
                                   "consent page.")
        self.throttles = self._tally("deviceflow_throttles", "Attempts refused by a rate-limit "
                                     "budget, by budget (`unavailable`: counters' storage down).",
                                     ("budget",))
        self.tokens_issued = self._tally("deviceflow_tokens_issued", "Successful token "
                                         "responses, by grant type.", ("grant_type",))
        self.revocations = self._tally("deviceflow_revocations", "Tokens revoked (RFC 7009), "
                                       "by token type.", ("token_type",))
        # Workers alive: each worker's 1, summed over live workers only (``mark_dead``).
        self.workers = Gauge("deviceflow_workers", "Worker processes serving requests.",
                             registry=registry, multiprocess_mode="livesum")

    def _tally(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Tally:
        family = Counter(name, documentation, labels, registry=self.registry)
        return Tally(family) if self.enabled else _Off(family)

    @classmethod
    def from_env(cls) -> Metrics:
        """Multi-process when ``deviceflow serve`` named a directory (several workers)."""
        return cls(multiprocess_dir=os.environ.get(MULTIPROC_ENV) or None)

    def started(self) -> None:
        if self.enabled:
            self.workers.set(1)

    def stopped(self) -> None:
        """A worker that shuts down leaves the live-worker sum (its counters stay: they count)."""
        if self.multiprocess_dir is not None:
            _mark_process_dead(os.getpid(), self.multiprocess_dir)

    def exposition(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        mark_dead(self.multiprocess_dir)
        merged = CollectorRegistry(auto_describe=False)
        _collect_files(merged, self.multiprocess_dir)
        return generate_latest(merged)


def mark_dead(path: str) -> None:
    """Mark workers that died without shutting down (killed, crashed; uvicorn starts new ones)
    so that the live-worker gauge drops them."""
    for name in glob.glob(os.path.join(path, "gauge_livesum_*.db")):
        found = _WORKER_FILE.search(name)
        if found is not None and not _alive(int(found.group(1))):
            _mark_process_dead(int(found.group(1)), path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's (a reused pid)
        return True
    try:  # a zombie (dead, not yet reaped by the supervisor) answers the signal too
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"  # the state follows "(name)"
    except (OSError, IndexError):  # no /proc (not Linux): trust the signal
        return True


def private_multiprocess_dir() -> str:
    """A new, empty directory only this user can read (``mkdtemp``: mode 0700), so no other
    local user can read or forge the counters, and no stale file from an earlier run is summed."""
    return tempfile.mkdtemp(prefix="deviceflow-metrics-")


def remove_multiprocess_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def token_matches(authorization: str | None, expected: bytes) -> bool:
    """RFC 6750 §2.1 ``Authorization: Bearer <token>``, compared in constant time."""
    if authorization is None:
        return False
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), expected)


async def metrics(request: Request) -> Response:
    """``GET /metrics`` for a scraper holding ``DEVICEFLOW_METRICS_TOKEN``; 401 otherwise."""
    state = request.app.state
    if not token_matches(request.headers.get("authorization"), state.metrics_token):
        return Response(b"", status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"',
                                                       "Cache-Control": "no-store"})
    body = state.metrics.exposition()
    return Response(body, headers={"Content-Type": CONTENT_TYPE,
                                   "Cache-Control": "no-store"})


routes = [Route("/metrics", metrics, methods=["GET"], name="metrics")]
