"""Structured logs: JSON lines when stderr is not a terminal, with the request id of the request
being served. Nothing secret is ever passed to a logger: codes and tokens stay out of messages,
and access lines carry the path without its query string (which may hold a user code)."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

from ..protocol.models import RequestOrigin

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

request_origin: contextvars.ContextVar[RequestOrigin | None] = contextvars.ContextVar(
    "request_origin", default=None)
"""Where the request being served came from (IP, user agent), set by the web layer's middleware
so the audit log can name it without every service call taking it as a parameter."""


class JsonFormatter(logging.Formatter):
    _EXTRA = ("method", "path", "status", "duration_ms", "client", "budget", "key_digest",
              # the audit log's fields (service/audit.py)
              "event", "user_id", "client_id", "ip_address", "user_agent", "family_id",
              "grant_type", "actor", "detail")

    _second = -1
    _second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # one strftime a second, not one a line
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        entry: dict[str, object] = {
            "ts": f"{self._second_text}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id.get(),
        }
        for key in self._EXTRA:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        return f"{base} [{request_id.get()}]"


def configure(fmt: str = "auto", level: str = "info") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    text = TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(JsonFormatter() if use_json else text)
    # Neither format shows the process or thread, so don't look them up for every record.
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic narrates every migration step at info level; only its warnings matter to operators.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # uvicorn's own access log prints the query string; ours replaces it.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
