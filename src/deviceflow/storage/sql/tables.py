"""The SQL schema of the storage ports (``storage/interface.py``) as SQLAlchemy Core tables.

One ``MetaData`` with a naming convention, so that every constraint and index has a stable,
dialect-neutral name: Alembic can then compare and alter them the same way on SQLite and
PostgreSQL. Strings are unbounded ``TEXT`` (SQLite ignores a length and PostgreSQL would enforce
it, so a bound would make the two dialects disagree). Timestamps are epoch seconds in ``Double``
columns (``protocol.models.Timestamp``), so no time zone handling differs between dialects.
Device codes, user codes, refresh tokens and browser session ids are stored only as HMACs (the
``*_hash`` columns): a copy of the database gives no usable code.

There are deliberately no foreign keys: the contract (``storage/memory.py``) lets a client or a
user be removed while device authorizations and refresh tokens naming it still exist; the service
refuses those records when it loads them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

clients = Table(
    "clients",
    metadata,
    Column("client_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("client_type", Text, nullable=False),
    Column("grant_types", Text, nullable=False),  # space-joined, sorted
    Column("scopes", Text, nullable=False),  # space-joined, sorted
    Column("secret_hash", Text, nullable=True),
    Column("device_code_lifetime", Integer, nullable=True),
    Column("created_at", Double, nullable=False),
    # Space-joined, sorted (a URI has no space, RFC 3986 §2); '' for none (0009).
    Column("redirect_uris", Text, nullable=False, server_default=""),
    # Device-flow rules (0009); NULL follows the server / places no restriction.
    Column("proximity_policy", Text, nullable=True),
    Column("device_networks", Text, nullable=True),  # space-joined CIDRs
    Column("device_countries", Text, nullable=True),  # space-joined ISO codes
    Column("device_scopes", Text, nullable=True),  # space-joined, sorted
    Column("device_access_token_lifetime", Integer, nullable=True),
    Column("device_refresh_token_lifetime", Integer, nullable=True),
    CheckConstraint("client_type IN ('public', 'confidential')", name="client_type"),
)

users = Table(
    "users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("username", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("email", Text, nullable=True),  # where sign-in warnings go (0009)
    UniqueConstraint("username"),
)

device_authorizations = Table(
    "device_authorizations",
    metadata,
    Column("device_code_hash", Text, primary_key=True),
    Column("user_code_hash", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("scope", Text, nullable=False),  # space-joined, in request order
    Column("status", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("interval", Integer, nullable=False),
    Column("ip_address", Text, nullable=False),
    Column("user_agent", Text, nullable=False),
    Column("last_polled_at", Double, nullable=True),
    Column("user_id", Text, nullable=True),
    Column("auth_time", Double, nullable=True),
    Column("decided_at", Double, nullable=True),
    Column("amr", Text, nullable=True),  # RFC 8176 values, space-joined; NULL: "pwd" (0012)
    # The device's network facts (0009), NULL when not looked up (policy off, or older rows).
    Column("net_country", Text, nullable=True),
    Column("net_country_name", Text, nullable=True),
    Column("net_asn", BigInteger, nullable=True),
    Column("net_as_org", Text, nullable=True),
    Column("net_hosting", Text, nullable=True),
    Column("net_local", Integer, nullable=True),  # 1 private/loopback, 0 public
    # Distinct accounts that opened this code's consent page: bumped by one UPDATE per new
    # account (a row in code_accounts first), so racing accounts each read their own count.
    Column("accounts_tried", Integer, nullable=False, server_default="0"),
    # The unique index is what makes a user code collision an IntegrityError (RFC 8628 §6.1:
    # a user code names exactly one pending authorization).
    UniqueConstraint("user_code_hash"),
    CheckConstraint("status IN ('pending', 'approved', 'denied', 'redeemed')", name="status"),
    Index(None, "expires_at"),  # purge scans by expiry
)

# Which accounts opened which code's consent page (0009): the distinct-accounts signal of the
# proximity judgement (RFC 10027 §6.1.4). The key makes an account count once per code.
code_accounts = Table(
    "code_accounts",
    metadata,
    Column("device_code_hash", Text, primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("expires_at", Double, nullable=False),  # the code's; purged with it
    Index(None, "expires_at"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", Text, primary_key=True),
    Column("family_id", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("issued_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("auth_time", Double, nullable=False),
    Column("status", Text, nullable=False),
    Column("family_expires_at", Double, nullable=False),  # the family's absolute end
    Column("grant_type", Text, nullable=False),  # the grant that began the login (gty)
    # Set on rotation: the grace path revokes this successor only while it is still unused.
    Column("successor_hash", Text, nullable=True),
    Column("rotated_at", Double, nullable=True),
    Column("amr", Text, nullable=True),  # RFC 8176 values, space-joined; NULL: "pwd" (0012)
    CheckConstraint("status IN ('active', 'rotated', 'revoked')", name="status"),
    Index(None, "family_id"),  # revoke_family on replay
    Index(None, "user_id"),  # a person's families: "Your devices", revoking them all (0005)
    Index(None, "expires_at"),  # purge scans by expiry
)

# Where each device login (refresh-token family) began, written at the code's redemption: the
# device authorization it came from is purged soon after, and "Your devices" still names it.
grants = Table(
    "grants",
    metadata,
    Column("family_id", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("approved_at", Double, nullable=False),
    Column("ip_address", Text, nullable=False),
    Column("user_agent", Text, nullable=False),
    Column("expires_at", Double, nullable=False),  # the family's absolute end
    Index(None, "expires_at"),  # purge scans by expiry
)

# Remembered consent (0012): one row per (person, client, granted scope), plus a row with the
# empty scope that says the client was approved at all. A row per scope makes a merge of scopes
# one INSERT … ON CONFLICT DO NOTHING: concurrent approvals add their scopes, none is lost.
consents = Table(
    "consents",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("client_id", Text, primary_key=True),
    Column("scope", Text, primary_key=True),
    Column("granted_at", Double, nullable=False),
)

# Authorization codes (RFC 6749 §4.1.2), kept as HMACs; redeemed ones stay until the purge so
# a replay is recognised and revokes what the code issued.
authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_hash", Text, primary_key=True),
    Column("client_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("redirect_uri_given", Integer, nullable=False),  # 0/1: the same on both dialects
    Column("scope", Text, nullable=False),  # space-joined, in request order
    Column("code_challenge", Text, nullable=True),
    Column("nonce", Text, nullable=True),
    Column("auth_time", Double, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("ip_address", Text, nullable=False),
    Column("user_agent", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("amr", Text, nullable=True),  # RFC 8176 values, space-joined; NULL: "pwd" (0012)
    CheckConstraint("status IN ('issued', 'redeemed')", name="status"),
    Index(None, "expires_at"),  # purge scans by expiry
)

browser_sessions = Table(
    "browser_sessions",
    metadata,
    Column("session_hash", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("auth_time", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("status", Text, nullable=False),
    Column("amr", Text, nullable=True),  # RFC 8176 values, space-joined; NULL: "pwd" (0012)
    CheckConstraint("status IN ('active', 'revoked')", name="status"),
    Index(None, "user_id"),  # revoke_all_for_user on a password change or an operator's signout
    Index(None, "expires_at"),  # purge scans by expiry
)

token_denylist = Table(
    "token_denylist",
    metadata,
    # 'jti': one access token; 'family': every access token of one login (its ``fam`` claim).
    Column("kind", Text, primary_key=True),
    Column("value", Text, primary_key=True),
    Column("expires_at", Double, nullable=False),  # when every token it matches has expired
    Column("created_at", Double, nullable=False),  # readers fetch only entries newer than this
    CheckConstraint("kind IN ('jti', 'family')", name="kind"),
    Index(None, "created_at"),
    Index(None, "expires_at"),  # purge scans by expiry
)

audit_log = Table(
    "audit_log",
    metadata,
    # 64 bits on PostgreSQL (a busy server may outlive 2^31 events); SQLite's INTEGER PRIMARY
    # KEY is its 64-bit rowid already, and only that exact spelling autoincrements.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    Column("occurred_at", Double, nullable=False),
    # No CHECK on event or actor: a new kind of event needs no migration.
    Column("event", Text, nullable=False),
    Column("user_id", Text, nullable=True),
    Column("client_id", Text, nullable=True),
    Column("ip_address", Text, nullable=True),
    Column("user_agent", Text, nullable=True),
    Column("family_id", Text, nullable=True),
    Column("request_id", Text, nullable=True),
    Column("grant_type", Text, nullable=True),
    Column("actor", Text, nullable=True),
    Column("detail", Text, nullable=True),
    Index(None, "occurred_at"),  # the purge and --since scan by time
    Index(None, "user_id"),  # deviceflow audit --user
    Index(None, "client_id"),  # deviceflow audit --client
)

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", LargeBinary, nullable=False),
    # How ``value`` is protected: 'aes-256-gcm' under the key-encryption key, or 'none' for a
    # row written by 0.1 and not yet sealed (migration 0002; sealed on the next start).
    Column("encryption", Text, nullable=False),
    CheckConstraint("encryption IN ('none', 'aes-256-gcm')", name="encryption"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", Text, primary_key=True),
    Column("alg", Text, nullable=False),
    # The private JWK is the server_secrets row of this name, sealed under the KEK.
    Column("secret_name", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("active_from", Double, nullable=False),
    Column("signs_until", Double, nullable=True),  # NULL: the newest key of its alg
    Column("retire_after", Double, nullable=True),
    # At most one newest key per algorithm, whatever races: the database says no to a second.
    Index("uq_signing_keys_newest_alg", "alg", unique=True,
          sqlite_where=text("signs_until IS NULL"), postgresql_where=text("signs_until IS NULL")),
)

# Notifications waiting to be delivered (protocol/notifications.py), written in the transaction of
# what they report; delivery claims a row with a compare-and-set on ``claimed_until`` (0009).
notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("message_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("destination", Text, nullable=True),
    Column("payload", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("next_attempt_at", Double, nullable=False),
    Column("claimed_until", Double, nullable=True),
    Column("claim_token", Text, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("finished_at", Double, nullable=True),
    CheckConstraint("kind IN ('event', 'email', 'webhook')", name="kind"),
    CheckConstraint("status IN ('pending', 'done', 'failed')", name="status"),
    Index(None, "status", "next_attempt_at"),  # the workers' scan for due messages
    Index(None, "finished_at"),  # purge
)

totp_factors = Table(
    "totp_factors",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("secret", LargeBinary, nullable=False),  # sealed under the KEK (server/secretbox.py)
    Column("active", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    # The last RFC 6238 time step a code was accepted for: the replay guard's compare-and-set.
    Column("last_step", BigInteger, nullable=False),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("code_hash", Text, primary_key=True),  # HMAC-SHA-256 under the server secret
    Column("user_id", Text, nullable=False),
    Column("used_at", Double, nullable=True),
    Index(None, "user_id"),
)

__all__ = [
    "NAMING_CONVENTION",
    "audit_log",
    "authorization_codes",
    "browser_sessions",
    "clients",
    "code_accounts",
    "consents",
    "device_authorizations",
    "grants",
    "metadata",
    "notification_outbox",
    "recovery_codes",
    "refresh_tokens",
    "server_secrets",
    "signing_keys",
    "token_denylist",
    "totp_factors",
    "users",
]
