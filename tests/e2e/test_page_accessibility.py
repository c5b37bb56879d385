"""The verification pages' controls as a browser draws them (issue 12): input borders and the
keyboard focus ring reach 3:1 against what surrounds them (WCAG 2.2 SC 1.4.11 non-text contrast,
SC 2.4.7 focus visible), in the light and the dark colour scheme; and a refused code is tied to
its input (``aria-invalid``, ``aria-describedby``) with what was typed kept.

Colours are read from the browser's computed styles and the contrast ratio computed here, so a
stylesheet change that breaks them fails here whatever the CSS says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from coloraide import Color
from playwright.sync_api import Browser, Locator, Page, expect
from tests.e2e.conftest import PHONE

pytestmark = pytest.mark.browser

NON_TEXT_CONTRAST = 3.0
Scheme = Literal["light", "dark"]


def contrast(foreground: str, background: str) -> float:
    """WCAG 2.x contrast ratio of two computed CSS colours (``rgb(…)``)."""
    return float(Color(foreground).contrast(background, method="wcag21"))


def style(locator: Locator, prop: str) -> str:
    value: str = locator.evaluate("(el, p) => getComputedStyle(el).getPropertyValue(p)", prop)
    return value


@pytest.fixture(params=["light", "dark"])
def scheme_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    scheme: Scheme = request.param
    context = browser.new_context(viewport=PHONE, locale="en-GB", timezone_id="UTC",
                                  color_scheme=scheme)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def page_background(page: Page) -> str:
    return style(page.locator("body"), "background-color")


def focus_by_keyboard(page: Page, target: Locator) -> None:
    """Move focus with Tab from the top of the page until ``target`` has it: the focus ring a
    keyboard user sees (``:focus-visible``), not the one a click leaves."""
    page.locator("h1").click()  # focus nothing, from a pointer
    for _ in range(20):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the control")
    assert target.evaluate("el => el.matches(':focus-visible')")


def assert_input_border(page: Page, box: Locator) -> None:
    background = page_background(page)
    for side in ("top", "right", "bottom", "left"):
        assert style(box, f"border-{side}-style") == "solid"
        assert float(style(box, f"border-{side}-width").removesuffix("px")) >= 1
        border = style(box, f"border-{side}-color")
        # Against the page outside the box and the box's own fill inside it.
        assert contrast(border, background) >= NON_TEXT_CONTRAST, (side, border, background)
        inside = style(box, "background-color")
        assert contrast(border, inside) >= NON_TEXT_CONTRAST, (side, border, inside)


def assert_focus_ring(page: Page, control: Locator) -> None:
    focus_by_keyboard(page, control)
    assert style(control, "outline-style") == "solid"
    assert float(style(control, "outline-width").removesuffix("px")) >= 2
    # The ring is drawn outside the control (outline-offset), over the page background.
    assert float(style(control, "outline-offset").removesuffix("px")) >= 0
    ring = style(control, "outline-color")
    background = page_background(page)
    assert contrast(ring, background) >= NON_TEXT_CONTRAST, (ring, background)


def test_the_scheme_is_the_one_asked_for(scheme_page: Page, live_server: Any,
                                         request: pytest.FixtureRequest) -> None:
    """Guards the tests below: in the dark scheme they really measure dark colours."""
    scheme_page.goto(live_server.issuer + "/device")
    background = Color(page_background(scheme_page))
    dark = background.luminance() < 0.2
    assert dark == ("dark" in request.node.callspec.id)


def test_code_page_input_border_and_focus_rings(scheme_page: Page, live_server: Any) -> None:
    scheme_page.goto(live_server.issuer + "/device")
    code = scheme_page.get_by_label("Code", exact=True)
    assert_input_border(scheme_page, code)
    assert_focus_ring(scheme_page, code)
    assert_focus_ring(scheme_page, scheme_page.get_by_role("button", name="Continue", exact=True))


def test_sign_in_page_input_borders_and_focus_rings(scheme_page: Page, live_server: Any) -> None:
    scheme_page.goto(live_server.issuer + "/device/signin")
    for label in ("Username", "Password"):
        box = scheme_page.get_by_label(label, exact=True)
        assert_input_border(scheme_page, box)
        assert_focus_ring(scheme_page, box)
    assert_focus_ring(scheme_page, scheme_page.get_by_role("button", name="Sign in", exact=True))


def test_a_refused_code_is_tied_to_its_input_and_kept(
    scheme_page: Page, live_server: Any,
) -> None:
    scheme_page.goto(live_server.issuer + "/device")
    code = scheme_page.get_by_label("Code", exact=True)
    expect(code).not_to_have_attribute("aria-invalid", "true")
    code.fill("bcdf ghjk")
    with scheme_page.expect_navigation():
        scheme_page.get_by_role("button", name="Continue", exact=True).click()

    alert = scheme_page.get_by_role("alert")
    expect(alert).to_contain_text("That code didn't work")
    # The same input, marked invalid, described by the alert (what a screen reader reads out
    # on focus), with the typed code kept in its display form to correct it.
    expect(code).to_have_attribute("aria-invalid", "true")
    expect(code).to_have_value("BCDF-GHJK")
    alert_id = alert.get_attribute("id")
    assert alert_id
    described_by = (code.get_attribute("aria-describedby") or "").split()
    assert alert_id in described_by
    assert "user_code_hint" in described_by  # the format hint is still read too
    expect(code).to_have_accessible_description(re.compile(r"^That code didn't work"))
    # The invalid border is still a visible control boundary.
    assert_input_border(scheme_page, code)


def test_a_good_code_after_a_refusal_is_not_marked_invalid(
    browser_page: Page, live_server: Any,
) -> None:
    """The marking belongs to the refusal, not to the page: a fresh page has none."""
    browser_page.goto(live_server.issuer + "/device?user_code=bcdfghjk")
    code = browser_page.get_by_label("Code", exact=True)
    expect(code).to_have_value("BCDF-GHJK")  # a pre-filled code is shown in display form too
    expect(code).not_to_have_attribute("aria-invalid", "true")
    assert code.get_attribute("aria-describedby") == "user_code_hint"
