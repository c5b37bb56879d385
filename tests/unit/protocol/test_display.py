"""``protocol.display``: which characters may not appear in a name a person is asked to trust."""

from __future__ import annotations

import pytest

from deviceflow.protocol.display import REPLACEMENT, display_safe, unsafe_characters

SAFE = ["Living-room TV", "Café Crème", "日本語のテレビ", "Ελληνικά", "עברית", "العربية",
        "TV 📺", "a\u00a0b"]


@pytest.mark.parametrize("name", SAFE, ids=range(len(SAFE)))
def test_plain_text_in_any_script_is_safe_and_shown_unchanged(name: str) -> None:
    assert unsafe_characters(name) == []
    assert display_safe(name) == name


@pytest.mark.parametrize(
    ("text", "shown", "named"),
    [
        ("Evil\u202egnp.exe", f"Evil{REPLACEMENT}gnp.exe", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("a\u202db", f"a{REPLACEMENT}b", "U+202D LEFT-TO-RIGHT OVERRIDE"),
        ("a\u2067b\u2069", f"a{REPLACEMENT}b{REPLACEMENT}", "U+2067 RIGHT-TO-LEFT ISOLATE"),
        ("a\u200fb", f"a{REPLACEMENT}b", "U+200F RIGHT-TO-LEFT MARK"),
        ("a\u200bb", f"a{REPLACEMENT}b", "U+200B ZERO WIDTH SPACE"),
        ("a\ufeffb", f"a{REPLACEMENT}b", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        ("a\nb", f"a{REPLACEMENT}b", "U+000A unnamed"),
        ("a\x1b[31mb", f"a{REPLACEMENT}[31mb", "U+001B unnamed"),
        ("a\x85b", f"a{REPLACEMENT}b", "U+0085 unnamed"),
        ("a\u2028b", f"a{REPLACEMENT}b", "U+2028 LINE SEPARATOR"),
        ("a\ue000b", f"a{REPLACEMENT}b", "U+E000 unnamed"),
    ],
    ids=["rlo", "lro", "isolate", "rlm", "zwsp", "bom", "newline", "ansi", "nel", "line-sep",
         "private-use"],
)
def test_characters_that_disguise_text_are_named_and_replaced(
    text: str, shown: str, named: str
) -> None:
    assert named in unsafe_characters(text)
    assert display_safe(text) == shown


def test_each_unsafe_character_is_named_once() -> None:
    assert unsafe_characters("\u202ea\u202eb\u202e") == ["U+202E RIGHT-TO-LEFT OVERRIDE"]
