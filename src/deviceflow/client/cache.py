"""Token cache: the OS keyring when one answers, otherwise one 0600 file per profile.

- Files live in a 0700 directory and are written atomically (temp file in the same directory,
  fsync, ``os.replace``, fsync of the directory), so a kill at any moment leaves the old cache or
  the new one, never half of one.
- Records are keyed by issuer, client and profile: a token never reaches another issuer.
- A per-record file lock serialises refreshes: 20 processes refreshing one profile make one
  refresh call; the others wait, re-read and use its result.
- A corrupt or unreadable record raises CacheCorruptError naming it; the reader never modifies it.

The keyring (and its ~100-200 ms backend search) is only imported when the keyring is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from deviceflow.client.errors import CacheCorruptError, CacheError, KeyringUnavailableError
from deviceflow.client.tokens import TokenSet

__all__ = [
    "CacheKey",
    "CacheRecord",
    "CachedToken",
    "FileStore",
    "KeyringStore",
    "SecretStore",
    "StoreKind",
    "TokenCache",
    "atomic_write",
    "ensure_private_dir",
    "probe_keyring",
]

RECORD_VERSION = 1
KEYRING_SERVICE = "deviceflow"
MAX_CACHED_ACCESS_TOKENS = 16


class StoreKind(StrEnum):
    AUTO = "auto"
    KEYRING = "keyring"
    FILE = "file"


# --- files ---------------------------------------------------------------------------------


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) and make it 0700, whatever the umask."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_mode & 0o777 != 0o700 and st.st_uid == os.getuid():
        path.chmod(0o700)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new content, never a mix."""
    directory = path.parent
    ensure_private_dir(directory)
    # mkstemp creates the file 0600 regardless of the umask (and O_EXCL, so no symlink games).
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode != 0o600:
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def remove_stale_temps(path: Path) -> None:
    """Temp files of ``path`` left by a killed writer (call while holding its lock)."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()


class FileLock:
    """An exclusive ``flock`` on a lock file; released when the process dies, whatever happens."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(
        self,
        *,
        timeout: float | None = None,
        on_wait: Callable[[], None] | None = None,
        poll: float = 0.05,
    ) -> None:
        import fcntl

        ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        started = time.monotonic()
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - started
                    if timeout is not None and waited >= timeout:
                        raise CacheError(
                            f"Another deviceflow process holds {self.path}; gave up after "
                            f"{timeout:g} seconds."
                        ) from None
                    if on_wait is not None and not told and waited >= 1.0:
                        on_wait()
                        told = True
                    time.sleep(poll)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# --- stores --------------------------------------------------------------------------------


class SecretStore(Protocol):
    """Where serialized records live. ``describe`` names an entry for messages and ``status``."""

    @property
    def kind(self) -> StoreKind: ...

    def read(self, name: str) -> str | None: ...

    def write(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> bool: ...

    def describe(self, name: str) -> str: ...


@dataclass(frozen=True, slots=True)
class FileStore:
    directory: Path
    kind: StoreKind = StoreKind.FILE

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def read(self, name: str) -> str | None:
        path = self.path(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CacheCorruptError(str(path), f"it cannot be read: {exc.strerror}") from None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CacheCorruptError(str(path), "it is not UTF-8 text") from None

    def write(self, name: str, value: str) -> None:
        path = self.path(name)
        atomic_write(path, value.encode("utf-8"))
        remove_stale_temps(path)

    def delete(self, name: str) -> bool:
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            return False
        return True

    def describe(self, name: str) -> str:
        return str(self.path(name))

    def exists(self, name: str) -> bool:
        return self.path(name).exists()


def probe_keyring(timeout: float = 3.0) -> str | None:
    """None when a keyring backend answers within ``timeout`` seconds, else the reason it didn't.

    The probe runs in a daemon thread: a backend stuck on a D-Bus call must not hang the CLI.
    """
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            import keyring
            import keyring.backends.fail

            backend = keyring.get_keyring()
            if isinstance(backend, keyring.backends.fail.Keyring):
                outcome.append("no keyring backend is installed or running")
                return
            if type(backend).__module__.startswith("keyring.backends.null"):
                outcome.append("the keyring is disabled")
                return
            backend.get_password(KEYRING_SERVICE, "__probe__")
            outcome.append(None)
        except Exception as exc:
            outcome.append(f"{type(exc).__name__}: {exc}"[:200])

    thread = threading.Thread(target=probe, name="deviceflow-keyring-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"the keyring did not answer within {timeout:g} seconds"
    return outcome[0]


@dataclass(frozen=True, slots=True)
class KeyringStore:
    service: str = KEYRING_SERVICE
    kind: StoreKind = StoreKind.KEYRING

    def read(self, name: str) -> str | None:
        import keyring
        import keyring.errors

        try:
            value: str | None = keyring.get_password(self.service, name)
        except keyring.errors.KeyringError as exc:
            raise KeyringUnavailableError(str(exc)[:200]) from None
        return value

    def write(self, name: str, value: str) -> None:
        import keyring
        import keyring.errors

        try:
            keyring.set_password(self.service, name, value)
        except keyring.errors.KeyringError as exc:
            raise KeyringUnavailableError(str(exc)[:200]) from None

    def delete(self, name: str) -> bool:
        import keyring
        import keyring.errors

        try:
            keyring.delete_password(self.service, name)
        except keyring.errors.PasswordDeleteError:
            return False
        except keyring.errors.KeyringError as exc:
            raise KeyringUnavailableError(str(exc)[:200]) from None
        return True

    def describe(self, name: str) -> str:
        return f"the system keyring (service '{self.service}', entry '{name}')"


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Tokens are keyed by issuer, client and profile."""

    issuer: str
    client_id: str
    profile: str
    subject: str = ""  # "": a person's tokens; "client": the client's own (client credentials)

    @property
    def digest(self) -> str:
        material = f"{self.issuer}\n{self.client_id}\n{self.profile}"
        if self.subject:
            material += f"\n{self.subject}"
        return hashlib.sha256(material.encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        """The entry name: file ``<profile>.<digest>.json`` or keyring user name."""
        return f"{self.profile}.{self.digest}"


def request_key(scopes: tuple[str, ...], audience: str | None) -> tuple[tuple[str, ...], str]:
    return tuple(sorted(set(scopes))), audience or ""


@dataclass(frozen=True, slots=True)
class CachedToken:
    """An access token and the request it answered (scopes asked for, audience)."""

    requested_scopes: tuple[str, ...]
    audience: str
    token: TokenSet

    def covers(self, scopes: tuple[str, ...], audience: str | None) -> bool:
        return (audience or "") == self.audience and set(scopes) <= set(self.requested_scopes)


@dataclass(frozen=True, slots=True)
class CacheRecord:
    key: CacheKey
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    tokens: tuple[CachedToken, ...] = ()
    updated_at: float = 0.0

    def find(
        self, scopes: tuple[str, ...], audience: str | None, *, now: float, margin: float = 60.0
    ) -> TokenSet | None:
        """A cached access token for this request, valid for more than ``margin`` seconds."""
        for entry in self.tokens:
            if entry.covers(scopes, audience) and entry.token.is_fresh(now, margin=margin):
                return entry.token
        return None

    def with_token(
        self, scopes: tuple[str, ...], audience: str | None, token: TokenSet, *, now: float
    ) -> CacheRecord:
        """The record after a grant: the new access token first, rotated refresh token kept."""
        wanted, aud = request_key(scopes, audience)
        merged = token.merged_with(
            TokenSet(access_token="", refresh_token=self.refresh_token, id_token=self.id_token)
        )
        entry = CachedToken(wanted, aud, _bare(merged))
        others = tuple(
            e
            for e in self.tokens
            if (e.requested_scopes, e.audience) != (wanted, aud) and e.token.is_fresh(now, margin=0)
        )
        return CacheRecord(
            key=self.key,
            refresh_token=merged.refresh_token,
            id_token=merged.id_token,
            tokens=((entry, *others))[:MAX_CACHED_ACCESS_TOKENS],
            updated_at=now,
        )

    def to_json(self) -> str:
        body = {
            "version": RECORD_VERSION,
            "issuer": self.key.issuer,
            "client_id": self.key.client_id,
            "profile": self.key.profile,
            **({"subject": self.key.subject} if self.key.subject else {}),
            "refresh_token": self.refresh_token,
            "id_token": self.id_token,
            "updated_at": self.updated_at,
            "tokens": [
                {
                    "requested_scopes": list(e.requested_scopes),
                    "audience": e.audience,
                    "access_token": e.token.access_token,
                    "token_type": e.token.token_type,
                    "expires_at": e.token.expires_at,
                    "scope": None if e.token.scope is None else list(e.token.scope),
                    "issued_at": e.token.issued_at,
                }
                for e in self.tokens
            ],
        }
        return json.dumps(body, indent=1, sort_keys=True) + "\n"

    @staticmethod
    def from_json(text: str, key: CacheKey, where: str) -> CacheRecord:
        try:
            data = json.loads(text)
        except ValueError:
            raise CacheCorruptError(where, "it is not valid JSON") from None
        try:
            return _record_from(data, key)
        except (TypeError, ValueError, KeyError) as exc:
            raise CacheCorruptError(where, f"it is not a deviceflow token cache: {exc}") from None


def _bare(token: TokenSet) -> TokenSet:
    return TokenSet(
        access_token=token.access_token,
        token_type=token.token_type,
        expires_at=token.expires_at,
        scope=token.scope,
        issued_at=token.issued_at,
    )


def _opt_str(data: Mapping[str, object], name: str) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"'{name}' is not a string")


def _opt_float(data: Mapping[str, object], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"'{name}' is not a number")


def _str_list(value: object, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"'{name}' is not a list of strings")
    return tuple(value)


def _record_from(data: object, key: CacheKey) -> CacheRecord:
    if not isinstance(data, dict):
        raise TypeError("the top level is not an object")
    if data.get("version") != RECORD_VERSION:
        raise ValueError(f"unknown version {data.get('version')!r}")
    stored = CacheKey(
        str(data["issuer"]), str(data["client_id"]), str(data["profile"]),
        str(data.get("subject", "")),
    )
    if stored != key:
        raise ValueError("it belongs to another issuer, client or profile")
    raw_tokens = data.get("tokens", [])
    if not isinstance(raw_tokens, list):
        raise TypeError("'tokens' is not a list")
    tokens = []
    for item in raw_tokens:
        if not isinstance(item, dict):
            raise TypeError("a token entry is not an object")
        access_token = item["access_token"]
        if not isinstance(access_token, str):
            raise TypeError("'access_token' is not a string")
        scope_value = item.get("scope")
        tokens.append(
            CachedToken(
                requested_scopes=_str_list(item.get("requested_scopes", []), "requested_scopes"),
                audience=_opt_str(item, "audience") or "",
                token=TokenSet(
                    access_token=access_token,
                    token_type=_opt_str(item, "token_type") or "Bearer",
                    expires_at=_opt_float(item, "expires_at"),
                    scope=None if scope_value is None else _str_list(scope_value, "scope"),
                    issued_at=_opt_float(item, "issued_at") or 0.0,
                ),
            )
        )
    return CacheRecord(
        key=key,
        refresh_token=_opt_str(data, "refresh_token"),
        id_token=_opt_str(data, "id_token"),
        tokens=tuple(tokens),
        updated_at=_opt_float(data, "updated_at") or 0.0,
    )


# --- the cache -----------------------------------------------------------------------------


@dataclass
class TokenCache:
    """Reads, writes and locks token records; picks the keyring or files per ``store_kind``.

    ``notify`` receives one-time notices for the person (the file fallback); the cache itself
    never prints.
    """

    data_dir: Path
    store_kind: StoreKind = StoreKind.AUTO
    notify: Callable[[str], None] | None = None
    keyring_timeout: float = 3.0
    _keyring_reason: str | None = field(default=None, init=False, repr=False)
    _keyring_probed: bool = field(default=False, init=False, repr=False)

    @property
    def files(self) -> FileStore:
        return FileStore(self.data_dir / "tokens")

    def lock_path(self, key: CacheKey) -> Path:
        return self.data_dir / "locks" / f"{key.name}.lock"

    @contextlib.contextmanager
    def locked(
        self,
        key: CacheKey,
        *,
        timeout: float | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> Iterator[None]:
        ensure_private_dir(self.data_dir)
        lock = FileLock(self.lock_path(key))
        lock.acquire(timeout=timeout, on_wait=on_wait)
        try:
            yield
        finally:
            lock.release()

    def _keyring_available(self) -> bool:
        if not self._keyring_probed:
            self._keyring_reason = probe_keyring(self.keyring_timeout)
            self._keyring_probed = True
        return self._keyring_reason is None

    def store_for(self, name: str) -> SecretStore:
        """The store holding (or about to hold) the entry ``name``."""
        if self.store_kind is StoreKind.FILE:
            return self.files
        if self.store_kind is StoreKind.KEYRING:
            if not self._keyring_available():
                raise KeyringUnavailableError(self._keyring_reason or "unknown reason")
            return KeyringStore()
        # auto: an entry already in a file stays there (it was written while no keyring
        # answered); otherwise the keyring when it answers, else files with a one-time notice.
        if self.files.exists(name):
            return self.files
        if self._keyring_available():
            return KeyringStore()
        self._announce_file_fallback()
        return self.files

    def _announce_file_fallback(self) -> None:
        marker = self.data_dir / ".file-store-notice-shown"
        if marker.exists():
            return
        if self.notify is not None:
            self.notify(
                f"No system keyring is available ({self._keyring_reason}), so tokens are "
                f"stored in files under {self.files.directory}, readable only by you. "
                "Set DEVICEFLOW_TOKEN_STORE=keyring to require a keyring instead."
            )
        with contextlib.suppress(OSError):
            atomic_write(marker, b"shown\n")

    def load(self, key: CacheKey) -> CacheRecord | None:
        store = self.store_for(key.name)
        text = store.read(key.name)
        if text is None:
            return None
        return CacheRecord.from_json(text, key, store.describe(key.name))

    def save(self, record: CacheRecord) -> None:
        self.store_for(record.key.name).write(record.key.name, record.to_json())

    def delete(self, key: CacheKey) -> list[str]:
        """Forget ``key`` everywhere it may be; returns the places something was removed."""
        return self.delete_entry(key.name)

    def delete_entry(self, name: str) -> list[str]:
        removed = []
        if self.files.delete(name):
            removed.append(self.files.describe(name))
        if self.store_kind is not StoreKind.FILE and self._keyring_available():
            store = KeyringStore()
            if store.delete(name):
                removed.append(store.describe(name))
        return removed

    def where(self, key: CacheKey) -> str:
        """Human description of where ``key`` lives (for ``status``)."""
        try:
            store = self.store_for(key.name)
        except CacheError as exc:
            return str(exc)
        return store.describe(key.name)

    # --- client secrets (confidential clients, e.g. Google's "TVs and Limited Input devices") --

    @staticmethod
    def secret_name(profile: str) -> str:
        return f"{profile}.client-secret"

    def load_secret(self, profile: str) -> str | None:
        name = self.secret_name(profile)
        text = self.store_for(name).read(name)
        return text.strip() if text else None

    def save_secret(self, profile: str, secret: str) -> None:
        name = self.secret_name(profile)
        self.store_for(name).write(name, secret)

    def profile_files(self, profile: str) -> list[Path]:
        """Every token file of ``profile``, whatever issuer or client it was for."""
        directory = self.files.directory
        if not directory.is_dir():
            return []
        return sorted(p for p in directory.glob(f"{profile}.*.json") if p.name.count(".") == 2)
