"""E-mail addresses of users and of the server's sender: syntax only (RFC 5322 addr-spec, with
internationalized domains as RFC 6531 allows), checked by ``email-validator`` without any DNS
lookup, so adding a user never waits on the network and a test machine needs none."""

from __future__ import annotations

MAX_LENGTH = 254
"""RFC 5321 §4.5.3.1.3's path limit less the angle brackets."""


class EmailAddressRefused(ValueError):
    """The message is one plain sentence for the operator."""


def normalized_email(address: str) -> str:
    """The address as it will be used (domain lower-cased and IDNA-normalized), or
    ``EmailAddressRefused``. A display name ("Ann <ann@example.com>") is refused: only the
    address is stored."""
    from email_validator import EmailNotValidError, validate_email

    if len(address) > MAX_LENGTH:
        raise EmailAddressRefused(f"the e-mail address is longer than {MAX_LENGTH} characters")
    try:
        valid = validate_email(address, check_deliverability=False,
                               allow_display_name=False)
    except EmailNotValidError as exc:
        raise EmailAddressRefused(f"not a valid e-mail address: {exc}") from None
    return valid.normalized


__all__ = ["MAX_LENGTH", "EmailAddressRefused", "normalized_email"]
