"""The header's text colour on the operator's brand colour: computed, at least 4.5:1 (WCAG 2.2
SC 1.4.3), and the brand stylesheet that carries both."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deviceflow.config.server import ServerSettings
from deviceflow.server.web.branding import (
    TEXT_CONTRAST_MIN,
    Branding,
    contrast,
    text_colour_on,
)


@pytest.mark.parametrize(
    ("a", "b", "ratio"),
    [("#000000", "#ffffff", 21.0), ("#ffffff", "#ffffff", 1.0), ("#767676", "#ffffff", 4.54)],
    ids=["black-white", "same", "grey-on-white"],
)
def test_contrast_is_the_wcag_ratio(a: str, b: str, ratio: float) -> None:
    """Reference values: 21:1 and 1:1 by definition; #767676 on white is the well-known
    lightest grey that passes AA (4.54:1)."""
    assert contrast(a, b) == pytest.approx(ratio, abs=0.01)
    assert contrast(b, a) == pytest.approx(ratio, abs=0.01)


@pytest.mark.parametrize(
    ("background", "text"),
    [("#ffffff", "#000000"), ("#000000", "#ffffff"), ("#0b5fff", "#ffffff"),
     ("#ffd400", "#000000"), ("#1a7f37", "#ffffff"), ("#777777", "#000000")],
    ids=["white", "black", "blue", "yellow", "green", "mid-grey"],
)
def test_text_colour_is_the_one_that_contrasts_more(background: str, text: str) -> None:
    assert text_colour_on(background) == text
    assert contrast(text, background) >= TEXT_CONTRAST_MIN


@given(st.from_regex(r"#[0-9a-f]{6}", fullmatch=True))
def test_every_brand_colour_gets_readable_text(background: str) -> None:
    assert contrast(text_colour_on(background), background) >= TEXT_CONTRAST_MIN


def test_the_brand_stylesheet_carries_colour_and_text_colour() -> None:
    brand = Branding.from_settings(ServerSettings(brand_color="#ffd400", site_name="Acme"))
    css = brand.brand_css
    assert css is not None
    assert "--brand: #ffd400;" in css
    assert "--brand-fg: #000000;" in css
    assert brand.site_name == "Acme"
    assert re.fullmatch(r"[0-9a-f]{12}", brand.brand_css_version)


def test_no_brand_colour_no_stylesheet_and_the_version_follows_the_colour() -> None:
    plain = Branding.from_settings(ServerSettings())
    assert plain.brand_css is None
    assert plain.site_name == "Device sign-in"
    blue = Branding.from_settings(ServerSettings(brand_color="#0b5fff"))
    green = Branding.from_settings(ServerSettings(brand_color="#1a7f37"))
    assert blue.brand_css_version != green.brand_css_version
