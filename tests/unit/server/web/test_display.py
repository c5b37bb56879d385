"""Times on the pages: the ``local_time`` filter every page uses, the zone always named, the
format of the browser's language (Accept-Language with q-values, RFC 9110 §12.5.4)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import jinja2
import pytest

from deviceflow.server.web import display
from deviceflow.server.web.display import (
    TimeDisplay,
    format_local_time,
    iso_time,
    negotiate_locale,
    time_display,
)
from deviceflow.server.web.pages import environment

MOMENT = datetime(2026, 12, 2, 14, 5, 9, tzinfo=UTC).timestamp()  # winter: CET is UTC+1


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        (None, "en_GB"),
        ("", "en_GB"),
        ("de-DE,de;q=0.9,en;q=0.8", "de_DE"),
        ("fr;q=0.4, de;q=0.9", "de"),  # the highest q wins, not the first listed
        ("de;q=0, fr;q=0.1", "fr"),  # q=0: "not acceptable"
        ("de-XX", "de"),  # an unknown region falls back to its language
        ("tlh, ja;q=0.5", "ja"),  # a language without formats is skipped
        ("tlh", "en_GB"),
        ("*", "en_GB"),
        ("EN-us", "en_US"),  # tags are case-insensitive
        ("de;q=oops, fr", "fr"),  # a broken q-value is not the top preference
        ("zh-Hant-TW", "zh_Hant_TW"),
    ],
    ids=["none", "empty", "chrome-de", "by-q", "q-zero", "region-fallback", "skip-unknown",
         "only-unknown", "star", "case", "bad-q", "script"],
)
def test_negotiate_locale(header: str | None, locale: str) -> None:
    assert str(negotiate_locale(header)) == locale


def test_an_overlong_header_is_cut_at_a_comma_not_refused() -> None:
    header = "de-DE," + ",".join(f"x{i:04d};q=0.1" for i in range(200))
    assert str(negotiate_locale(header)) == "de_DE"


@pytest.mark.parametrize(
    ("header", "zone", "shown"),
    [
        (None, "UTC", "2 December 2026, 14:05:09 UTC"),
        ("en-GB", "Europe/Paris", "2 December 2026, 15:05:09 CET"),
        ("en-US", "America/New_York", "December 2, 2026, 9:05:09\u202fAM EST"),
        ("de-DE", "Europe/Berlin", "2. Dezember 2026, 15:05:09 MEZ"),
        ("de-DE", "UTC", "2. Dezember 2026, 14:05:09 UTC"),
        ("en-GB", "Asia/Tokyo", "2 December 2026, 23:05:09 +0900"),
    ],
    ids=["default", "paris", "new-york", "berlin-de", "utc-de", "tokyo-offset"],
)
def test_times_are_in_the_display_zone_with_the_zone_named(
    header: str | None, zone: str, shown: str,
) -> None:
    assert format_local_time(MOMENT, time_display(header, ZoneInfo(zone))) == shown


def test_iso_time_is_utc_whatever_the_display_zone() -> None:
    assert iso_time(MOMENT) == "2026-12-02T14:05:09+00:00"
    naive = datetime(2026, 12, 2, 14, 5, 9)  # naive: read as UTC
    assert iso_time(naive) == "2026-12-02T14:05:09+00:00"


def test_the_pages_filter_formats_for_the_request() -> None:
    template = environment.from_string(
        '<time datetime="{{ ts | iso_time }}">{{ ts | local_time }}</time>'
    )
    shown = template.render(ts=MOMENT, **{
        display.CONTEXT_KEY: TimeDisplay(negotiate_locale("de"), ZoneInfo("Europe/Berlin")),
    })
    assert shown == (
        '<time datetime="2026-12-02T14:05:09+00:00">2. Dezember 2026, 15:05:09 MEZ</time>'
    )


def test_the_filter_refuses_to_guess_without_a_request() -> None:
    with pytest.raises(TypeError, match="time_display"):
        environment.from_string("{{ ts | local_time }}").render(ts=MOMENT)


def test_every_page_template_shows_times_only_through_the_filter() -> None:
    """A ``<time>`` element anywhere in the templates gets its text from ``local_time``."""
    loader = environment.loader
    assert isinstance(loader, jinja2.BaseLoader)
    names = environment.list_templates()
    assert "consent.html" in names
    shown = 0
    for name in names:
        source, _, _ = loader.get_source(environment, name)
        for element in source.split("<time ")[1:]:
            text = element.split(">", 1)[1].split("</time>", 1)[0]
            assert "| local_time" in text, (name, text)
            shown += 1
    assert shown >= 4  # consent, result, and the two on "Your devices"
