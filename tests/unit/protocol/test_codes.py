"""Device codes, user codes and their keyed hashes (RFC 8628 §3.2, §5.1, §6.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deviceflow.protocol import codes
from deviceflow.protocol.codes import (
    DEVICE_CODE_BYTES,
    USER_CODE_ALPHABET,
    USER_CODE_LENGTH,
    CodeHasher,
    SecretsCodeSource,
    format_user_code,
    hash_client_secret,
    normalize_user_code,
    verify_client_secret,
)

KEY = bytes(range(32))
SHOWN = re.compile(rf"^[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}$")

user_codes = st.text(alphabet=USER_CODE_ALPHABET, min_size=USER_CODE_LENGTH,
                     max_size=USER_CODE_LENGTH)


def _b64url_bytes(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


# --- the alphabet (RFC 8628 §6.1) ----------------------------------------------------------------


def test_alphabet_is_the_rfc_example_base20_set() -> None:
    assert USER_CODE_ALPHABET == "BCDFGHJKLMNPQRSTVWXZ"
    assert len(set(USER_CODE_ALPHABET)) == 20
    assert USER_CODE_LENGTH == 8


@pytest.mark.parametrize("letter", list("AEIOUY0123456789"), ids=lambda c: f"no-{c}")
def test_alphabet_has_no_vowels_or_digits(letter: str) -> None:
    # No vowels: no words spelt by accident; no digits: no 0/O or 1/I confusion.
    assert letter not in USER_CODE_ALPHABET


# --- the production code source ------------------------------------------------------------------


def test_user_codes_are_eight_letters_from_the_alphabet() -> None:
    source = SecretsCodeSource()
    drawn = [source.user_code() for _ in range(500)]
    for code in drawn:
        assert len(code) == USER_CODE_LENGTH
        assert set(code) <= set(USER_CODE_ALPHABET)
    assert len(set(drawn)) > 490  # 20^8 codes: repeats in 500 draws are vanishingly rare
    # Every letter turns up: the draw really spans the alphabet.
    assert set("".join(drawn)) == set(USER_CODE_ALPHABET)


@pytest.mark.parametrize("kind", ["device_code", "token"])
def test_device_codes_and_tokens_carry_at_least_256_bits(kind: str) -> None:
    source = SecretsCodeSource()
    drawn = [getattr(source, kind)() for _ in range(200)]
    assert DEVICE_CODE_BYTES * 8 >= 256
    for value in drawn:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", value), "URL-safe, no padding"
        assert len(_b64url_bytes(value)) * 8 >= 256
    assert len(set(drawn)) == len(drawn)


def test_code_source_uses_the_os_csprng(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_token_urlsafe(nbytes: int) -> str:
        calls.append(nbytes)
        return "x" * 43

    monkeypatch.setattr(codes.secrets, "token_urlsafe", fake_token_urlsafe)
    SecretsCodeSource().device_code()
    SecretsCodeSource().token()
    assert calls == [32, 32]


# --- normalization (RFC 8628 §6.1: case-insensitive, punctuation ignored) ----------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("WDJB-MJHT", "WDJBMJHT"),
        ("WDJBMJHT", "WDJBMJHT"),
        ("wdjb-mjht", "WDJBMJHT"),
        ("wdjb mjht", "WDJBMJHT"),
        ("  WdJb  MjHt ", "WDJBMJHT"),
        ("W-D-J-B-M-J-H-T", "WDJBMJHT"),
        ("WDJB–MJHT", "WDJBMJHT"),  # en dash, as phones "smart"-correct it
        ("WDJB—MJHT", "WDJBMJHT"),  # em dash
        ("WDJB_MJHT", "WDJBMJHT"),
        ("WDJB.MJHT", "WDJBMJHT"),
        ("\tWDJB\nMJHT\r", "WDJBMJHT"),
    ],
    ids=["shown", "bare", "lower", "space", "mixed-case-spaces", "dashes-everywhere", "en-dash",
         "em-dash", "underscore", "dot", "whitespace"],
)
def test_normalize_accepts_what_people_type(typed: str, expected: str) -> None:
    assert normalize_user_code(typed) == expected


@pytest.mark.parametrize(
    "typed",
    ["", "-", "WDJB-MJH", "WDJB-MJHTB", "WDJB-MJH1", "AEIO-UAEI", "WDJB-MJHÉ", "WDJB/MJHT",
     "WDJB+MJHT", "WDJB%MJHT", "12345678"],
    ids=["empty", "dash-only", "seven", "nine", "digit", "vowels", "accent", "slash", "plus",
         "percent", "digits"],
)
def test_normalize_refuses_what_cannot_be_a_code(typed: str) -> None:
    assert normalize_user_code(typed) is None


@st.composite
def typed_forms(draw: st.DrawFn) -> tuple[str, str]:
    """A code, and a way a person might type it: any case, spaces and dashes anywhere."""
    code = draw(user_codes)
    shown = format_user_code(code) if draw(st.booleans()) else code
    out = []
    for ch in shown:
        out.append(draw(st.sampled_from(["", " ", "-", "  ", " - "])))
        out.append(ch.lower() if draw(st.booleans()) else ch)
    out.append(draw(st.sampled_from(["", " ", "-", "\n"])))
    return code, "".join(out)


@given(typed_forms())
def test_any_typed_form_normalizes_back_to_the_code(case: tuple[str, str]) -> None:
    code, typed = case
    assert normalize_user_code(typed) == code


@given(user_codes)
def test_format_then_normalize_round_trips(code: str) -> None:
    shown = format_user_code(code)
    assert SHOWN.match(shown)
    assert normalize_user_code(shown) == code
    assert normalize_user_code(shown.lower()) == code


@given(st.text(max_size=40))
def test_normalize_yields_a_code_or_nothing(raw: str) -> None:
    result = normalize_user_code(raw)
    assert result is None or (
        len(result) == USER_CODE_LENGTH and set(result) <= set(USER_CODE_ALPHABET)
    )


def test_format_groups_in_fours() -> None:
    assert format_user_code("WDJBMJHT") == "WDJB-MJHT"


# --- keyed hashes (§5.1: codes at rest only as HMACs) -------------------------------------------


def test_hasher_needs_a_256_bit_secret() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CodeHasher(b"x" * 31)
    CodeHasher(b"x" * 32)


@pytest.mark.parametrize(
    ("kind", "label"),
    [("device_code", b"device_code"), ("user_code", b"user_code"),
     ("refresh_token", b"refresh_token")],
    ids=["device_code", "user_code", "refresh_token"],
)
def test_hash_is_hmac_sha256_under_the_server_secret_with_a_label(kind: str, label: bytes) -> None:
    value = "WDJBMJHT"
    expected = hmac.new(KEY, label + b"\x00" + value.encode(), hashlib.sha256).hexdigest()
    assert getattr(CodeHasher(KEY), kind)(value) == expected


@given(st.text(min_size=1, max_size=64))
def test_labels_separate_the_kinds(value: str) -> None:
    hasher = CodeHasher(KEY)
    hashes = {hasher.device_code(value), hasher.user_code(value), hasher.refresh_token(value)}
    assert len(hashes) == 3
    for digest in hashes:
        assert re.fullmatch(r"[0-9a-f]{64}", digest)


@given(st.text(min_size=1, max_size=64))
def test_hashes_depend_on_the_server_secret(value: str) -> None:
    assert CodeHasher(KEY).device_code(value) != CodeHasher(b"\x01" * 32).device_code(value)


def test_hash_is_deterministic_and_hides_the_code() -> None:
    hasher = CodeHasher(KEY)
    code = SecretsCodeSource().device_code()
    assert hasher.device_code(code) == hasher.device_code(code)
    assert code not in hasher.device_code(code)


# --- client secrets ------------------------------------------------------------------------------


def test_client_secret_hash_verifies_only_the_right_secret() -> None:
    secret = SecretsCodeSource().token()
    stored = hash_client_secret(secret)
    assert secret not in stored
    assert verify_client_secret(secret, stored)
    assert not verify_client_secret(secret + "x", stored)
    assert not verify_client_secret("", stored)


def test_client_secret_compare_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(codes.hmac, "compare_digest", spy)
    assert verify_client_secret("s3cret", hash_client_secret("s3cret"))
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("typed", "shown"),
    [("wdjb mjht", "WDJB-MJHT"), (" WDJBMJHT ", "WDJB-MJHT"), ("wdjb-mjht", "WDJB-MJHT"),
     ("wdjb-mjh", "wdjb-mjh"), (" hello! ", "hello!"), ("", "")],
    ids=["spaced", "no-dash", "dashed", "too-short-as-typed", "not-a-code-as-typed", "empty"],
)
def test_display_user_code_shows_what_was_typed_in_display_form(typed: str, shown: str) -> None:
    """The code page keeps what a person typed when it refuses it (issue 12): in display form
    when it has the shape of a code, else as typed so the mistake can be seen."""
    assert codes.display_user_code(typed) == shown
