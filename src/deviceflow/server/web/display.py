"""Times as a person reads them: in the operator's display time zone, always with the zone named,
in the date and time format of the browser's language (``Accept-Language``, RFC 9110 §12.5.4).

The pages run no JavaScript, so the browser's own time zone is never known to the server: a time
without its zone would be read as local and be wrong by hours. Every page formats its times
through the ``local_time`` filter here, so no page shows a time any other way.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale, localedata
from babel.dates import format_datetime
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

DEFAULT_LOCALE = "en-GB"
"""When the browser names no language we have formats for (or sends no header)."""

_MAX_ACCEPT_LANGUAGE = 512
"""Longer headers are cut at a comma before this: real browsers send well under 200 characters."""

CONTEXT_KEY = "time_display"
"""The template variable holding the request's ``TimeDisplay`` (set by ``pages.render``)."""


@dataclass(frozen=True, slots=True)
class TimeDisplay:
    locale: Locale
    zone: ZoneInfo


@functools.cache
def _known_locales() -> tuple[str, ...]:
    """Every locale Babel has formats for, as language tags, the default first (the match for
    ``*``)."""
    tags = sorted(identifier.replace("_", "-") for identifier in localedata.locale_identifiers())
    return (DEFAULT_LOCALE, *(tag for tag in tags if tag != DEFAULT_LOCALE))


@functools.lru_cache(maxsize=256)
def negotiate_locale(accept_language: str | None) -> Locale:
    """The locale to format for: the browser's most preferred language (highest ``q``; ``q=0``
    means "not this one") that has formats, a region falling back to its language (``de-XX`` →
    ``de``), else ``DEFAULT_LOCALE``."""
    header = (accept_language or "").strip()
    if len(header) > _MAX_ACCEPT_LANGUAGE:
        header = header[:_MAX_ACCEPT_LANGUAGE].rpartition(",")[0]
    accepted = parse_accept_header(header, LanguageAccept)
    tag = accepted.best_match(_known_locales(), default=DEFAULT_LOCALE)
    return Locale.parse(tag, sep="-")


def time_display(accept_language: str | None, zone: ZoneInfo) -> TimeDisplay:
    return TimeDisplay(negotiate_locale(accept_language), zone)


def _moment(timestamp: float | datetime) -> datetime:
    if isinstance(timestamp, datetime):
        return timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    return datetime.fromtimestamp(timestamp, tz=UTC)


def format_local_time(timestamp: float | datetime, display: TimeDisplay) -> str:
    """The locale's long date-and-time format, whose time part names the zone (CLDR's ``z``):
    "2 December 2026, 15:05:09 CET" (en-GB), "December 2, 2026, 9:05:09 AM EST" (en-US),
    "2. Dezember 2026, 14:05:09 UTC" (de); a zone without a short name in that language is
    named by its offset ("+0900")."""
    return format_datetime(_moment(timestamp), "long", tzinfo=display.zone,
                           locale=display.locale)


def iso_time(timestamp: float | datetime) -> str:
    """The machine-readable form for ``<time datetime=…>``, in UTC."""
    return _moment(timestamp).astimezone(UTC).isoformat(timespec="seconds")


@jinja2.pass_context
def local_time_filter(context: jinja2.runtime.Context, timestamp: float | datetime) -> str:
    """``{{ ts | local_time }}``: ``format_local_time`` for this request's browser."""
    display = context.get(CONTEXT_KEY)
    if not isinstance(display, TimeDisplay):
        raise TypeError(f"pages.render sets {CONTEXT_KEY}; this template was rendered without it")
    return format_local_time(timestamp, display)


def install(environment: jinja2.Environment) -> None:
    """Register the filters every page uses: ``local_time`` and ``iso_time``."""
    environment.filters["local_time"] = local_time_filter
    environment.filters["iso_time"] = iso_time
