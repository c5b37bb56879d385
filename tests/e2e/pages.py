"""Driving the verification pages the way a person does: by label and button text.

The words are the contract of DESIGN.md ("Verification pages"): labels **Code**, **Username**,
**Password**; buttons **Continue**, **Sign in**, **Approve**, **Deny**; the result in
``role="status"``; a refused code in ``role="alert"``. ``approve`` and ``deny`` are reused by the
CLI tests, so keep their signatures.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

DEVICE_CONNECTED = "Device connected"
REQUEST_DENIED = "Request denied"


class RefusedError(AssertionError):
    """The page refused the code or the sign-in; the message is what the page said."""


def _shoot(page: Page, screenshot_dir: Path | None, name: str) -> None:
    if screenshot_dir is not None:
        screenshot_dir.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot_dir / f"{name}.png"), full_page=True)


def _wait_for_any(page: Page, *targets: Locator) -> None:
    """Wait until one of ``targets`` or an alert shows; an alert means the step was refused."""
    alert = page.get_by_role("alert")
    combined = alert
    for target in targets:
        combined = combined.or_(target)
    expect(combined.first).to_be_visible()
    if alert.count() and alert.first.is_visible():
        raise RefusedError(alert.first.inner_text().strip())


def submit_code(
    page: Page, typed: str | None = None, *, screenshot_dir: Path | None = None
) -> None:
    """On the code page: optionally type ``typed`` into **Code**, then press **Continue**."""
    code = page.get_by_label("Code", exact=True)
    expect(code).to_be_visible()
    if typed is not None:
        code.fill(typed)
    _shoot(page, screenshot_dir, "1-code")
    with page.expect_navigation():
        page.get_by_role("button", name="Continue", exact=True).click()


def second_factor(page: Page, code: str, *, screenshot_dir: Path | None = None) -> None:
    """On the second step of the sign-in: type ``code`` into **Verification code**, press
    **Verify**."""
    box = page.get_by_label("Verification code", exact=True)
    expect(box).to_be_visible()
    box.fill(code)
    _shoot(page, screenshot_dir, "2b-verify")
    with page.expect_navigation():
        page.get_by_role("button", name="Verify", exact=True).click()


def sign_in_if_asked(
    page: Page, username: str, password: str, *, screenshot_dir: Path | None = None,
    otp: Callable[[], str] | None = None,
) -> None:
    """After **Continue**: sign in when the page asks; a signed-in session goes straight on.
    ``otp`` gives the code for the "Verification code" step of a person with a second factor."""
    approve_button = page.get_by_role("button", name="Approve", exact=True)
    username_box = page.get_by_label("Username", exact=True)
    _wait_for_any(page, approve_button, username_box)
    if approve_button.is_visible():
        return
    username_box.fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    _shoot(page, screenshot_dir, "2-signin")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in", exact=True).click()
    if otp is not None:
        _wait_for_any(page, approve_button, page.get_by_label("Verification code", exact=True))
        if not approve_button.is_visible():
            second_factor(page, otp(), screenshot_dir=screenshot_dir)
    _wait_for_any(page, approve_button)


def decide(page: Page, button: str, expected: str, *, screenshot_dir: Path | None = None) -> None:
    """On the consent page: press ``button`` and wait for ``expected`` in ``role="status"``."""
    expect(page.get_by_text("Only approve if you started this sign-in")).to_be_visible()
    _shoot(page, screenshot_dir, "3-consent")
    with page.expect_navigation():
        page.get_by_role("button", name=button, exact=True).click()
    expect(page.get_by_role("status")).to_contain_text(expected)
    _shoot(page, screenshot_dir, f"4-{expected.lower().replace(' ', '-')}")


def approve(
    page: Page, verification_uri_complete: str, username: str, password: str,
    *, screenshot_dir: Path | None = None, otp: Callable[[], str] | None = None,
) -> None:
    """Open ``verification_uri_complete``, confirm the pre-filled code, sign in, and approve.
    Returns once the page says "Device connected"; raises ``RefusedError`` with the page's words
    when the code or the password is refused."""
    page.goto(verification_uri_complete)
    submit_code(page, screenshot_dir=screenshot_dir)
    sign_in_if_asked(page, username, password, screenshot_dir=screenshot_dir, otp=otp)
    decide(page, "Approve", DEVICE_CONNECTED, screenshot_dir=screenshot_dir)


def deny(
    page: Page, verification_uri_complete: str, username: str, password: str,
    *, screenshot_dir: Path | None = None,
) -> None:
    """Like ``approve``, but press **Deny** and wait for "Request denied"."""
    page.goto(verification_uri_complete)
    submit_code(page, screenshot_dir=screenshot_dir)
    sign_in_if_asked(page, username, password, screenshot_dir=screenshot_dir)
    decide(page, "Deny", REQUEST_DENIED, screenshot_dir=screenshot_dir)
