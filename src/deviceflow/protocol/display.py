"""Text that a person reads on a consent page: client names (chosen by whoever registers a
client) and User-Agent strings (chosen by whoever starts a device authorization).

RFC 8628 §5.4 asks the consent page to let a person judge who is asking. Unicode lets a name lie
about itself: U+202E RIGHT-TO-LEFT OVERRIDE reverses the text after it ("moc.elgoog" shown as
"google.com"), zero-width and other format characters hide text or join look-alikes, and control
characters break lines. HTML escaping does nothing against any of these (CVE-2021-42574,
"Trojan Source", is the same trick in source code). So names with them are refused at
registration, and anything shown is made safe first, whatever is already stored.
"""

from __future__ import annotations

import unicodedata

REPLACEMENT = "\N{REPLACEMENT CHARACTER}"

_UNSAFE_CATEGORIES = frozenset({
    "Cc",  # controls: C0, DEL, C1 (line breaks, escape sequences)
    "Cf",  # format: bidi overrides/embeddings/isolates, zero-width spaces and joiners, BOM
    "Cs",  # lone surrogates
    "Co",  # private use: renders as anything a font wants
    "Cn",  # unassigned
    "Zl",  # line separator
    "Zp",  # paragraph separator
})


def unsafe_characters(text: str) -> list[str]:
    """The characters of ``text`` that may not appear in a displayed name, as ``U+XXXX NAME``."""
    found: dict[str, None] = {}
    for char in text:
        if unicodedata.category(char) in _UNSAFE_CATEGORIES:
            found[f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed')}"] = None
    return list(found)


def display_safe(text: str) -> str:
    """``text`` with every unsafe character replaced by U+FFFD, so a tampered name shows that it
    was tampered with instead of what the tamperer wanted shown."""
    if text.isascii() and text.isprintable():
        return text  # the common case, decided without looking at each character
    return "".join(
        REPLACEMENT if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text
    )
