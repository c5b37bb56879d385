"""The server's one configuration source (environment prefix ``DEVICEFLOW_``, or CLI flags).

Every field has a description; ``docs/configuration.md`` is generated from this model
(``python -m deviceflow.config.docs``). Feature flags here decide both which routes exist and what
discovery advertises.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
import zoneinfo
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict


def _refused(sentence: str) -> PydanticCustomError:
    """A validation error that reads as the plain sentence given: a ``ValueError`` would be
    shown as "Value error, …" by pydantic, and so by ``deviceflow serve``."""
    return PydanticCustomError("invalid_setting", sentence)


ENV_ONLY = "env_only"
"""Marks a field that is read from the environment only: no command-line flag."""


_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")
"""One segment of an issuer's path: unreserved characters only (RFC 3986 §2.3), so the path
is the same whether or not a proxy or client percent-encodes it."""

METRICS_TOKEN_MIN = 32
"""Characters of the metrics bearer token: a random token that long cannot be guessed."""

DEFAULT_SITE_NAME = "Device sign-in"
SITE_NAME_MAX = 80
_HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def env_only(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get(ENV_ONLY) is True


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEVICEFLOW_", extra="ignore", frozen=True)

    # --- listening ----------
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.")
    workers: int = Field(1, ge=1, le=64, description="Worker processes serving requests.")
    certfile: str | None = Field(None, description="TLS certificate (PEM) to serve HTTPS directly.")
    keyfile: str | None = Field(None, description="TLS private key (PEM) for `certfile`.")
    keep_alive_timeout: int = Field(
        75, ge=1, le=3600,
        description="Seconds an idle HTTP connection stays open. Longer than the polling interval "
        "(plus `slow_down` steps), so a polling device reuses its connection and never sends a "
        "poll on a connection the server is closing at that moment.",
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Comma-separated proxy addresses (or `*`) trusted to set X-Forwarded-For and "
        "X-Forwarded-Proto. The client IP used for limits and the consent page comes from these "
        "headers only when the connection is from a trusted proxy.",
    )

    # --- identity ----------
    issuer: str = Field(
        "",
        description="Issuer identifier (RFC 8414 §2): the public base URL, e.g. "
        "`https://auth.example.com`. Defaults to `http://HOST:PORT`. Must be HTTPS unless its host "
        "is loopback. It may have a path (`https://auth.example.com/tenant`): every route is then "
        "served under that path, and RFC 8414 discovery also at "
        "`/.well-known/oauth-authorization-server/tenant`.",
    )
    proxy_strips_issuer_path: bool = Field(
        False,
        description="With an issuer that has a path: the reverse proxy in front removes that "
        "path before passing a request on (nginx `proxy_pass http://backend/;` in "
        "`location /tenant/`), so requests arrive as `/token` rather than `/tenant/token`. "
        "Routes, links, redirects and the cookie path still use the issuer's path "
        "(docs/operator.md, \"Path issuers and reverse proxies\").",
    )
    db: str = Field(
        "",
        description="Database URL: `sqlite:///path` or `postgresql://user@host/db`. Defaults to a "
        "SQLite file in the user data directory.",
    )
    redis: str | None = Field(
        None,
        description="Redis URL (`redis://host:6379/0`) to share rate limits across workers and "
        "hosts. Without it, limits live in each process (fine for one process only).",
    )
    migrate_on_start: bool = Field(
        True, description="Run database migrations to the newest revision when the server starts."
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key-encryption key sealing the server's keys and secrets in the database "
        "(AES-256-GCM): 32 random bytes in base64url, e.g. from `python -c 'import secrets; "
        "print(secrets.token_urlsafe(32))'`. Environment only, never a flag (other users can "
        "read command lines). Takes precedence over `secret_key_file`; keep it apart from "
        "database backups, and never change it for a database that uses it.",
        json_schema_extra={ENV_ONLY: True},
    )
    secret_key_file: str = Field(
        "",
        description="File holding the key-encryption key when `DEVICEFLOW_SECRET_KEY` is not "
        "set; created 0600 on first start. Defaults to the SQLite file's name with `.key` for "
        "its extension, beside it (`deviceflow.key` beside `deviceflow.sqlite3`), else "
        "`deviceflow.key` in the user data directory. Back it up apart from the database: "
        "without it the database's secrets cannot be read.",
    )
    signing_alg: Literal["RS256", "ES256"] = Field(
        "RS256", description="Algorithm for signing access and ID tokens."
    )
    extra_signing_algs: tuple[Literal["RS256", "ES256"], ...] = Field(
        (), description="Further key algorithms to create and publish in the JWKS."
    )
    signing_key_reload_interval: float = Field(
        60.0, gt=0, le=3600,
        description="Seconds between re-reads of the signing keys from the database, so every "
        "worker picks up `deviceflow keys rotate` without a restart. A rotated-in key is "
        "published at once and signs only after twice this interval (every worker has it in "
        "its JWKS by then, and so has every cache that honours the JWKS `max-age`, which is "
        "this interval). Give `deviceflow keys rotate` the same value as the servers.",
    )

    # --- lifetimes ----------
    device_code_expires_in: int = Field(
        600, ge=30, le=3600,
        description="Default lifetime of device and user codes, seconds (RFC 8628 §3.2 "
        "`expires_in`); a client may override it.",
    )
    interval: int = Field(
        5, ge=1, le=60, description="Minimum polling interval sent to devices, seconds (§3.2)."
    )
    expired_code_retention: int = Field(
        86400, ge=0,
        description="How long an expired device code is kept so late polls get `expired_token`.",
    )
    access_token_lifetime: int = Field(3600, ge=60, description="Access token lifetime, seconds.")
    id_token_lifetime: int = Field(3600, ge=60, description="ID token lifetime, seconds.")
    refresh_token_lifetime: int = Field(
        30 * 86400, ge=60,
        description="Refresh token lifetime, seconds; sliding: each refresh starts it again.",
    )
    refresh_token_absolute_lifetime: int = Field(
        90 * 86400, ge=60,
        description="Absolute lifetime of a device's login (its refresh token family), seconds, "
        "from the sign-in: after it the device must sign in again however often it refreshed; "
        "no refresh token outlives it.",
    )
    refresh_token_reuse_grace: int = Field(
        60, ge=0, le=3600,
        description="Seconds after a refresh in which the previous refresh token may be presented "
        "again (a response lost on the way) while its successor is unused: the device gets new "
        "tokens and the unused successor stops working. Any other reuse revokes the device's "
        "login (RFC 9700 §4.14.2). 0 = strict rotation.",
    )
    access_token_audience: str | None = Field(
        None, description="`aud` of access tokens (RFC 9068 §3). Defaults to the issuer."
    )
    session_lifetime: int = Field(
        8 * 3600, ge=60,
        description="How long a browser stays signed in on the verification pages, seconds. The "
        "sign-in is kept on the server: signing out, a password change, removing the user or "
        "`deviceflow user signout` ends it for every copy of the cookie.",
    )
    approval_max_age: int = Field(
        15 * 60, ge=30,
        description="Approving a device needs a password entered less than this many seconds "
        "ago; an older sign-in is asked for the password again before it can approve (denying "
        "needs no fresh password). Separate from, and normally shorter than, "
        "`session_lifetime`.",
    )
    purge_interval: float = Field(
        60.0, gt=0, description="Seconds between background purges of expired codes and tokens."
    )
    audit_retention: int = Field(
        90 * 86400, ge=3600,
        description="Seconds an audit log record is kept (default 90 days); the background "
        "purge deletes older ones.",
    )

    # --- proximity (RFC 10027 §6.1.1; docs/security.md, "Proximity") ----------
    proximity_policy: Literal["off", "report", "warn", "enforce"] = Field(
        "warn",
        description="What the server does with the risk of each approval, judged from the "
        "networks of the device and of the approver: `off` (no lookup), `report` (audit log "
        "only), `warn` (also say it on the consent page, Deny first), `enforce` (also refuse "
        "to approve a high-risk request; the device gets `access_denied`). A client may have "
        "its own (`deviceflow client update --proximity-policy`).",
    )
    network_asn_database: str | None = Field(
        None,
        description="A MaxMind-format ASN database (GeoLite2-ASN, DB-IP IP-to-ASN Lite) for "
        "the network and hosting-provider signals; read at start, never fetched "
        "(docs/operator.md, \"Network databases\").",
    )
    network_country_database: str | None = Field(
        None,
        description="A MaxMind-format country or city database (GeoLite2-Country or -City, "
        "DB-IP IP-to-Country Lite) for the country signal and `--device-country` rules.",
    )
    hosting_networks_file: str | None = Field(
        None,
        description="Your own hosting providers (TOML, the format of the packaged "
        "`hosting_networks.toml`), counted beside the packaged list.",
    )

    # --- features ----------
    enable_refresh_token: bool = Field(
        True, description="Offer the refresh_token grant (RFC 6749 §6) and advertise it."
    )
    enable_client_credentials: bool = Field(
        True,
        description="Offer the client credentials grant (RFC 6749 §4.4) to confidential clients "
        "registered for it, and advertise it.",
    )
    enable_authorization_code: bool = Field(
        True,
        description="Offer the authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636) at "
        "`/authorize` to clients registered for it with redirect URIs, and advertise it.",
    )
    enable_userinfo: bool = Field(
        True, description="Mount and advertise the OIDC userinfo endpoint."
    )
    enable_revocation: bool = Field(
        True,
        description="Mount and advertise the token revocation endpoint (RFC 7009), with which "
        "a client signs out: revoking a refresh token ends its login and the access tokens "
        "issued from it.",
    )
    enable_introspection: bool = Field(
        True,
        description="Mount and advertise the token introspection endpoint (RFC 7662) for "
        "resource servers registered as confidential clients.",
    )

    # --- operations ----------
    enable_metrics: bool = Field(
        False,
        description="Serve Prometheus metrics at `GET /metrics`, to a scraper that sends "
        "`Authorization: Bearer` with `DEVICEFLOW_METRICS_TOKEN` (docs/operator.md).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token a scraper must send to read `/metrics` (at least 32 "
        "characters, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`). "
        "Required when `enable_metrics` is on. Environment only, never a flag.",
        json_schema_extra={ENV_ONLY: True},
    )

    # --- notifications (docs/operator.md, "Notifications") ----------
    smtp_host: str | None = Field(
        None,
        description="SMTP server that sends \"A device signed in to your account\" to users with "
        "an e-mail address (`user add/update --email`). Unset: no e-mail is sent.",
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="Port of `smtp_host`.")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="`starttls` (upgrade a plain connection, usually port 587), `tls` (implicit "
        "TLS, usually port 465), or `none` (plain text: only to a loopback `smtp_host`). The "
        "server's certificate is verified against the system's CAs.",
    )
    smtp_from: str = Field(
        "", description="From address of the e-mails; required with `smtp_host`."
    )
    smtp_username: str | None = Field(
        None, description="User name to log in to `smtp_host` with; unset: no login."
    )
    smtp_password: SecretStr | None = Field(
        None,
        description="Password for `smtp_username`. Environment only (`DEVICEFLOW_SMTP_PASSWORD`), "
        "never a flag or a file in the configuration.",
        json_schema_extra={ENV_ONLY: True},
    )
    smtp_timeout: float = Field(
        30.0, gt=0, le=300, description="Seconds one SMTP conversation may take."
    )
    webhook_urls: tuple[str, ...] = Field(
        (),
        description="URLs that receive a signed JSON event (Standard Webhooks) for each "
        "approval, denial, high-risk request, refresh-token reuse and revocation. HTTPS unless "
        "the host is loopback. Needs `DEVICEFLOW_WEBHOOK_SECRET` or `webhook_secret_file`.",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Signing secret of the webhooks, `whsec_` and base64 of 24 to 64 random "
        "bytes. Environment only; takes precedence over `webhook_secret_file`.",
        json_schema_extra={ENV_ONLY: True},
    )
    webhook_secret_file: str = Field(
        "",
        description="File holding the webhook signing secret when `DEVICEFLOW_WEBHOOK_SECRET` "
        "is not set; must be mode 0600 (the server refuses to start otherwise).",
    )
    webhook_timeout: float = Field(
        10.0, gt=0, le=120, description="Seconds one webhook request may take."
    )
    notification_max_attempts: int = Field(
        8, ge=1, le=50,
        description="Attempts to deliver one e-mail or webhook before giving up (logged).",
    )
    notification_retry_base: float = Field(
        30.0, gt=0, le=3600,
        description="Seconds before the first retry of a failed delivery; each further retry "
        "waits twice as long, at most an hour.",
    )
    notification_poll_interval: float = Field(
        5.0, gt=0, le=300,
        description="Seconds between the delivery task's looks at the outbox for work other "
        "workers or the operator CLI wrote (this worker's own events are sent at once).",
    )

    # --- brute force (RFC 8628 §5.1) ------------------------------------------------------------
    limit_code_per_session: str = Field(
        "5/10 minutes", description="Wrong user codes allowed per browser session."
    )
    limit_code_per_ip: str = Field("20/hour", description="Wrong user codes allowed per client IP.")
    limit_code_global: str = Field(
        "1000/hour",
        description="Wrong user codes allowed server-wide from people not signed in. Past it, "
        "people sign in first and get a per-account budget.",
    )
    limit_code_per_account: str = Field(
        "20/hour", description="Wrong user codes allowed per signed-in account."
    )
    limit_login_per_account: str = Field(
        "5/15 minutes", description="Failed passwords allowed per username."
    )
    limit_login_per_ip: str = Field(
        "30/hour", description="Failed passwords allowed per client IP."
    )
    limit_mfa_per_account: str = Field(
        "5/15 minutes",
        description="Wrong verification codes (authenticator app or recovery code) allowed per "
        "account after its password; each attempt is counted before it is judged.",
    )
    limit_device_authorization_per_ip: str = Field(
        "300/minute",
        description="Device authorization requests allowed per client and client IP (IPv6: per "
        "/64). Generous so that a fleet of devices behind one NAT can start together; past it "
        "the answer is 429 with `Retry-After`.",
    )
    limit_device_codes_per_client: int = Field(
        10_000, ge=1,
        description="Device codes one client may be issued within one code lifetime, which "
        "bounds the codes it holds live (and the rows and the brute-force odds they make).",
    )

    # --- pages ----------
    site_name: str = Field(
        DEFAULT_SITE_NAME, min_length=1, max_length=SITE_NAME_MAX,
        description="Name shown in the header and the browser tab title of every page a person "
        "sees (the verification pages, \"Your devices\" and their error pages), e.g. "
        "`Example Corp sign-in`.",
    )
    brand_color: str | None = Field(
        None,
        description="Brand colour of the page header, as a hex colour (`#1a7f37` or `#1a7`). "
        "The header text is black or white, whichever contrasts more with it (always at least "
        "4.5:1, WCAG 2.2 SC 1.4.3). Unset: the plain header.",
    )
    display_time_zone: str = Field(
        "UTC",
        description="IANA time zone (e.g. `Europe/Berlin`) in which the pages show times, "
        "always with the zone named (`14:05:09 UTC`, `15:05:09 CET`): without JavaScript a "
        "browser does not send its own. The date and time format follows the browser's "
        "`Accept-Language`.",
    )

    # --- logs ----------
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="Log format; `auto` is JSON unless stderr is a terminal."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level logged."
    )

    @field_validator("issuer")
    @classmethod
    def _issuer_shape(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _refused("issuer must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise _refused("issuer must not have a query or fragment (RFC 8414 §2)")
        segments = parts.path.rstrip("/").split("/")[1:]
        if any(not _PATH_SEGMENT.match(seg) or seg in (".", "..") for seg in segments):
            raise _refused(
                "the issuer's path must be plain segments of letters, digits, '-', '.', '_' "
                "or '~' (e.g. https://auth.example.com/tenant)"
            )
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise _refused(
                "issuer must use HTTPS unless its host is loopback (RFC 8628 §5.3, RFC 8414 §2)"
            )
        return value

    @field_validator("site_name")
    @classmethod
    def _site_name_shape(cls, value: str) -> str:
        value = value.strip()
        if not value or any(unicodedata.category(ch).startswith("C") for ch in value):
            raise _refused("site_name must be printable text of one line")
        return value

    @field_validator("brand_color")
    @classmethod
    def _brand_color_shape(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not _HEX_COLOUR.fullmatch(value):
            raise _refused("brand_color must be a hex colour such as #1a7f37 or #1a7")
        digits = value[1:].lower()
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        return "#" + digits

    @field_validator("display_time_zone")
    @classmethod
    def _time_zone_known(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise _refused(
                f"display_time_zone {value!r} is not an IANA time zone name such as "
                "Europe/Berlin or UTC"
            ) from None
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise _refused(f"webhook URL {url!r} must be an absolute http(s) URL")
            if parts.scheme == "http" and not is_loopback_host(parts.hostname):
                raise _refused(f"webhook URL {url!r} must use HTTPS unless its host is loopback")
        return value

    @model_validator(mode="after")
    def _notifications(self) -> ServerSettings:
        if self.smtp_host:
            if not self.smtp_from:
                raise _refused("smtp_host needs smtp_from, the address the e-mails come from")
            from ..protocol.email_address import EmailAddressRefused, normalized_email

            try:
                normalized_email(self.smtp_from)
            except EmailAddressRefused as exc:
                raise _refused(f"smtp_from: {exc}") from None
            if self.smtp_security == "none" and not is_loopback_host(self.smtp_host):
                raise _refused("smtp_security none (plain text) is only allowed to a loopback "
                               "smtp_host")
            if self.smtp_password is not None and not self.smtp_username:
                raise _refused("DEVICEFLOW_SMTP_PASSWORD needs smtp_username")
        if self.webhook_urls and self.webhook_secret is None and not self.webhook_secret_file:
            raise _refused("webhook_urls need DEVICEFLOW_WEBHOOK_SECRET or webhook_secret_file")
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if bool(self.certfile) != bool(self.keyfile):
            raise _refused("certfile and keyfile go together")
        if not self.issuer and not is_loopback_host(self.host):
            raise _refused(
                "listening on a non-loopback address needs --issuer with the public HTTPS URL"
            )
        if self.enable_metrics:
            token = self.metrics_token.get_secret_value() if self.metrics_token else ""
            if len(token) < METRICS_TOKEN_MIN:
                raise _refused(f"enable_metrics needs DEVICEFLOW_METRICS_TOKEN of at least "
                               f"{METRICS_TOKEN_MIN} characters")
        return self

    @property
    def effective_issuer(self) -> str:
        if self.issuer:
            return self.issuer
        scheme = "https" if self.certfile else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def issuer_path(self) -> str:
        """The issuer's path without a trailing slash (``/tenant``), or "" for a bare host: the
        prefix of every route (RFC 8414 §3.1 removes a terminating "/" the same way)."""
        return urlsplit(self.effective_issuer).path.rstrip("/")

    @property
    def effective_secret_key_file(self) -> Path:
        """Where the key-encryption key file is (or will be created)."""
        if self.secret_key_file:
            return Path(self.secret_key_file).expanduser()
        from ..storage.sql.engine import sqlite_file

        database = sqlite_file(self.effective_db)
        if database is not None:
            return database.with_name(database.stem + ".key")
        import platformdirs

        return Path(platformdirs.user_data_dir("deviceflow", appauthor=False)) / "deviceflow.key"

    @property
    def effective_db(self) -> str:
        if self.db:
            return self.db
        from ..storage.sql.engine import default_db_url

        return default_db_url()
