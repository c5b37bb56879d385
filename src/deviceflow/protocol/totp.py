"""Time-based one-time passwords (RFC 6238, on HOTP RFC 4226, through ``pyotp``) and the
one-time recovery codes that stand in for a lost authenticator. Pure: the clock's reading and
the random secret are passed in.

RFC 6238 §5.2: the verifier accepts codes of the current time step and of one step either side
(clock drift and the time to type), and "MUST NOT accept the second attempt of the same OTP after
the successful validation has been issued for the first OTP": the step a code matched is
returned so storage can accept each step once, and no step older than the last accepted one.
"""

from __future__ import annotations

import hmac
import secrets
import string

import pyotp

PERIOD = 30
"""Seconds per time step (RFC 6238 §5.2's recommended X = 30)."""
DIGITS = 6
DRIFT_STEPS = 1
"""Steps accepted either side of the current one (RFC 6238 §6)."""
SECRET_BYTES = 20
"""160 bits: RFC 4226 §4 R6 recommends 160 bits for the shared secret."""

RECOVERY_CODES = 10
RECOVERY_ALPHABET = "bcdfghjkmnpqrstvwxz23456789"
"""No vowels (no words), no look-alikes (0/o, 1/l/i)."""
RECOVERY_LENGTH = 10
"""10 characters of 27: about 47 bits, shown as ``xxxxx-xxxxx``."""


def new_secret() -> str:
    """A fresh shared secret in base32, as authenticator apps take it."""
    return pyotp.random_base32(length=32)  # 32 base32 characters = 160 bits


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/`` URI the QR code carries (the Key Uri Format read by
    authenticator apps): issuer and account label, SHA-1, 6 digits, 30 seconds."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account, issuer_name=issuer)


def normalize_code(text: str) -> str:
    """What was typed, without spaces and dashes, lower case."""
    return "".join(ch for ch in text.casefold() if ch not in " -\t")


def looks_like_totp(code: str) -> bool:
    return len(code) == DIGITS and all(ch in string.digits for ch in code)


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step (T of RFC 6238 §4.2) whose code is ``code``, within ``DRIFT_STEPS`` of the
    current one, or None. Every candidate is compared in constant time."""
    if not looks_like_totp(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = int(now) // PERIOD
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """Fresh one-time recovery codes in their display form (``xxxxx-xxxxx``)."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        codes.append(raw[:5] + "-" + raw[5:])
    return codes


def looks_like_recovery(code: str) -> bool:
    return len(code) == RECOVERY_LENGTH and all(ch in RECOVERY_ALPHABET for ch in code)


__all__ = [
    "DIGITS",
    "PERIOD",
    "RECOVERY_CODES",
    "looks_like_recovery",
    "looks_like_totp",
    "matching_step",
    "new_recovery_codes",
    "new_secret",
    "normalize_code",
    "provisioning_uri",
]
