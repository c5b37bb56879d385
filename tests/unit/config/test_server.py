"""Server settings: the issuer rules (RFC 8414 §2, RFC 8628 §5.3) and derived values."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from deviceflow.config.server import ServerSettings, is_loopback_host


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEVICEFLOW_ISSUER", "DEVICEFLOW_HOST", "DEVICEFLOW_PORT", "DEVICEFLOW_CERTFILE",
                 "DEVICEFLOW_KEYFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "issuer",
    ["https://auth.example.com", "https://auth.example.com/", "https://auth.example.com/tenant",
     "http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000",
     "http://127.1.2.3", "http://dev.localhost:9000"],
    ids=["https", "https-slash", "https-path", "loopback-v4", "localhost", "loopback-v6",
         "loopback-net", "dot-localhost"],
)
def test_accepted_issuers(issuer: str) -> None:
    assert ServerSettings(issuer=issuer).effective_issuer == issuer


@pytest.mark.parametrize(
    ("issuer", "message"),
    [
        ("http://auth.example.com", "HTTPS"),
        ("http://10.0.0.5:8000", "HTTPS"),
        ("http://0.0.0.0:8000", "HTTPS"),
        ("ftp://auth.example.com", "http"),
        ("auth.example.com", "http"),
        ("https://auth.example.com?x=1", "query"),
        ("https://auth.example.com#frag", "fragment"),
    ],
    ids=["http-public-name", "http-private-ip", "http-any-address", "ftp", "no-scheme",
         "query", "fragment"],
)
def test_refused_issuers(issuer: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServerSettings(issuer=issuer)


@pytest.mark.parametrize(
    ("values", "issuer"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"port": 9001}, "http://127.0.0.1:9001"),
        ({"host": "::1", "port": 9001}, "http://[::1]:9001"),
        ({"host": "0.0.0.0", "issuer": "https://auth.example.com"}, "https://auth.example.com"),
    ],
    ids=["default", "port", "ipv6-host", "explicit"],
)
def test_effective_issuer(values: dict[str, Any], issuer: str) -> None:
    assert ServerSettings(**values).effective_issuer == issuer


def test_public_listener_needs_an_issuer() -> None:
    with pytest.raises(ValidationError, match="issuer"):
        ServerSettings(host="0.0.0.0")


def test_tls_files_go_together() -> None:
    with pytest.raises(ValidationError, match="together"):
        ServerSettings(certfile="/x/cert.pem")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("a.localhost", True), ("10.0.0.1", False), ("example.com", False), ("", False),
     (None, False), ("localhost.example.com", False)],
    ids=["v4", "v6", "v6-bracketed", "localhost", "sub-localhost", "private", "name", "empty",
         "none", "lookalike"],
)
def test_is_loopback_host(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_defaults_match_the_issue() -> None:
    settings = ServerSettings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.device_code_expires_in == 600
    assert settings.interval == 5
    assert settings.enable_refresh_token
    assert settings.enable_userinfo


def test_every_field_is_described() -> None:
    for name, field in ServerSettings.model_fields.items():
        assert field.description, name


def test_refresh_rotation_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServerSettings()
    assert settings.refresh_token_reuse_grace == 60
    assert settings.refresh_token_absolute_lifetime == 90 * 86400
    assert settings.refresh_token_lifetime == 30 * 86400
    monkeypatch.setenv("DEVICEFLOW_REFRESH_TOKEN_REUSE_GRACE", "0")  # strict rotation
    monkeypatch.setenv("DEVICEFLOW_REFRESH_TOKEN_ABSOLUTE_LIFETIME", "86400")
    strict = ServerSettings()
    assert (strict.refresh_token_reuse_grace, strict.refresh_token_absolute_lifetime) == (0, 86400)
    with pytest.raises(ValidationError):
        ServerSettings(refresh_token_reuse_grace=-1)


# --- the pages: site name, brand colour, display time zone (issue 12) ------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [("#1A7F37", "#1a7f37"), ("#1a7", "#11aa77"), ("#000", "#000000"), ("", None)],
    ids=["six-digits-upper", "three-digits", "black", "empty-is-unset"],
)
def test_brand_colour_is_a_hex_colour_kept_as_six_digits(given: str, kept: str | None) -> None:
    assert ServerSettings(brand_color=given).brand_color == kept


@pytest.mark.parametrize(
    "given", ["red", "1a7f37", "#1a7f3", "#1a7f37ff", "#ggg", "rgb(0,0,0)", "#1a7f37;x:y"],
    ids=["named", "no-hash", "five-digits", "alpha", "not-hex", "function", "css-injection"],
)
def test_brand_colour_refused_unless_hex(given: str) -> None:
    with pytest.raises(ValidationError, match="brand_color must be a hex colour"):
        ServerSettings(brand_color=given)


def test_brand_colour_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVICEFLOW_BRAND_COLOR", "#0B5FFF")
    monkeypatch.setenv("DEVICEFLOW_SITE_NAME", "  Example Corp sign-in ")
    settings = ServerSettings()
    assert (settings.brand_color, settings.site_name) == ("#0b5fff", "Example Corp sign-in")


@pytest.mark.parametrize("name", ["   ", "two\nlines", "bell\x07", "x" * 81],
                         ids=["blank", "newline", "control", "too-long"])
def test_site_name_refused_unless_one_printable_line(name: str) -> None:
    with pytest.raises(ValidationError, match="site_name"):
        ServerSettings(site_name=name)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"])
def test_display_time_zone_accepts_iana_names(zone: str) -> None:
    assert ServerSettings(display_time_zone=zone).display_time_zone == zone


def test_display_time_zone_defaults_to_utc() -> None:
    assert ServerSettings().display_time_zone == "UTC"


@pytest.mark.parametrize("zone",
                         ["CEST+2", "Europe/Nowhere", "", "../../etc/passwd", "/etc/localtime"],
                         ids=["abbreviation", "unknown", "empty", "relative-path", "absolute-path"])
def test_display_time_zone_refused_unless_known(zone: str) -> None:
    with pytest.raises(ValidationError, match="is not an IANA time zone name"):
        ServerSettings(display_time_zone=zone)
