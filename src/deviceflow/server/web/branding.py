"""What every page shows of the operator: the site name, the brand colour of the header, and the
time zone times are shown in (``ServerSettings.site_name``, ``brand_color``,
``display_time_zone``).

The pages allow styles only from our own origin (CSP ``style-src 'self'``, no inline styles), so
the brand colour reaches them as a small stylesheet of its own (``brand_css``), served at
``/brand.css`` with a version in its URL.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from coloraide import Color

from ...config.server import DEFAULT_SITE_NAME, ServerSettings

TEXT_CONTRAST_MIN = 4.5
"""WCAG 2.2 SC 1.4.3 (contrast, minimum) for normal-size text: the header's name on the brand
colour."""

_TEXT_CANDIDATES = ("#000000", "#ffffff")
_UTC = ZoneInfo("UTC")


def contrast(foreground: str, background: str) -> float:
    """The WCAG 2.x contrast ratio of two CSS colours (1.0 to 21.0)."""
    return float(Color(foreground).contrast(background, method="wcag21"))


def text_colour_on(background: str) -> str:
    """Black or white, whichever contrasts more with ``background``. One of the two always
    reaches 4.5:1 (the worst case, a background of relative luminance ~0.18, gives 4.58:1); the
    check says so rather than assuming it."""
    best = max(_TEXT_CANDIDATES, key=lambda text: contrast(text, background))
    if contrast(best, background) < TEXT_CONTRAST_MIN:  # pragma: no cover - arithmetic says never
        raise ValueError(f"no text colour reaches {TEXT_CONTRAST_MIN}:1 on {background}")
    return best


@dataclass(frozen=True)
class Branding:
    """No ``slots``: the stylesheet is worked out once, on first use (``cached_property``)."""

    site_name: str = DEFAULT_SITE_NAME
    brand_color: str | None = None
    time_zone: ZoneInfo = _UTC

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> Branding:
        return cls(
            site_name=settings.site_name,
            brand_color=settings.brand_color,
            time_zone=ZoneInfo(settings.display_time_zone),
        )

    @functools.cached_property
    def brand_css(self) -> str | None:
        """The header in the brand colour with its computed text colour, or None (plain)."""
        if self.brand_color is None:
            return None
        text = text_colour_on(self.brand_color)
        return (
            "/* The operator's brand colour (DEVICEFLOW_BRAND_COLOR); text colour computed for "
            f"at least {TEXT_CONTRAST_MIN}:1. */\n"
            ":root {\n"
            f"  --brand: {self.brand_color};\n"
            f"  --brand-fg: {text};\n"
            "}\n"
        )

    @functools.cached_property
    def brand_css_version(self) -> str:
        """Changes with the stylesheet, so a cached copy of an old colour is never used."""
        return hashlib.sha256((self.brand_css or "").encode()).hexdigest()[:12]
