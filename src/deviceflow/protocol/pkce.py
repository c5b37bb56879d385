"""Proof Key for Code Exchange (RFC 7636), ``S256`` only.

RFC 7636 §4.2 allows ``plain`` only for clients that cannot compute SHA-256; RFC 9700 §2.1.1
says clients SHOULD use ``S256`` and servers MUST support it. Every client can hash, and
``plain`` protects nothing once the authorization request is seen, so it is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

S256 = "S256"
CODE_CHALLENGE_METHODS: tuple[str, ...] = (S256,)

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
"""RFC 7636 §4.1: ``code-verifier = 43*128unreserved``."""

_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")
"""An S256 challenge is BASE64URL of 32 bytes without padding (§4.2): exactly 43 characters."""


def is_challenge(value: str) -> bool:
    """Whether ``value`` can be an S256 ``code_challenge`` at all (RFC 7636 §4.2)."""
    return _CHALLENGE.match(value) is not None


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: ``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6: the server computes the challenge from the verifier and compares (in
    constant time); a verifier outside the §4.1 alphabet or length never matches."""
    if _VERIFIER.match(verifier) is None:
        return False
    return hmac.compare_digest(s256(verifier), challenge)
