"""Profiles: named server + client settings, kept in one TOML file written atomically.

Besides ``profiles.toml`` the store writes ``.profiles-index.json``, a derived summary (cache key,
scopes, default profile) stamped with the TOML file's identity. The cached ``get-token`` fast path
reads only the index, so it never pays for ``tomllib``; any edit of the TOML file (by us or by
hand) changes the stamp and sends readers back to the TOML file, which rewrites the index.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from deviceflow.client.cache import CacheKey, atomic_write, ensure_private_dir
from deviceflow.client.errors import (
    ConfigurationError,
    ProfileError,
    ProfileExistsError,
    ProfileNotFoundError,
)
from deviceflow.client.flow import check_secure_url
from deviceflow.client.providers import (
    LOCAL_DEFAULT_ISSUER,
    ProviderKind,
    preset_endpoints,
    provider_for,
)

__all__ = [
    "DEFAULT_DOCKER_USERNAME",
    "INDEX_FILE",
    "PROFILES_FILE",
    "FlowKind",
    "Profile",
    "ProfileStore",
    "normalize_registry",
    "validate_profile_name",
]

PROFILES_FILE = "profiles.toml"
INDEX_FILE = ".profiles-index.json"
INDEX_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# A registry host as docker names it: DNS labels or an IP, an optional port (no scheme, no path).
_REGISTRY = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
    r"(?::[0-9]{1,5})?$"
)
# Google's convention for an OAuth access token used as a registry password; ACR wants
# 00000000-0000-0000-0000-000000000000 instead (docs/cli.md, "docker").
DEFAULT_DOCKER_USERNAME = "oauth2accesstoken"


class FlowKind(StrEnum):
    """The three ways get-token can obtain a token (docs/cli.md, "Flows")."""

    DEVICE_CODE = "device-code"  # RFC 8628: sign in on another device
    INTERACTIVE_BROWSER = "interactive-browser"  # RFC 6749 §4.1 + RFC 7636 + RFC 8252
    CLIENT_CREDENTIALS = "client-credentials"  # RFC 6749 §4.4: the client's own token

    @property
    def for_person(self) -> bool:
        return self is not FlowKind.CLIENT_CREDENTIALS


def normalize_registry(value: str) -> str | None:
    """The registry host[:port] in ``value`` (a host, or a URL such as docker's
    ``https://index.docker.io/v1/``), lower-cased; None when it is not one."""
    text = value.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    return text if text and _REGISTRY.match(text) else None


def validate_profile_name(name: str) -> str:
    if not _NAME.match(name):
        raise ProfileError(
            f"'{name}' is not a valid profile name: use up to 64 letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    return name


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    provider: ProviderKind = ProviderKind.LOCAL
    client_id: str = ""
    issuer: str | None = None  # discovery providers; "local" defaults to LOCAL_DEFAULT_ISSUER
    tenant_id: str | None = None  # Entra
    scopes: tuple[str, ...] = ()
    audience: str | None = None  # Auth0 (and any server accepting RFC 8707-like audiences)
    # None: get-token picks the browser or the device code for the machine (flow_choice.py).
    default_flow: FlowKind | None = None
    has_client_secret: bool = False  # the secret itself lives in the token store, never here
    docker_registries: tuple[str, ...] = ()  # hosts docker-credential-deviceflow answers for
    docker_username: str | None = None  # the Username it answers (DEFAULT_DOCKER_USERNAME)

    @property
    def effective_docker_username(self) -> str:
        return self.docker_username or DEFAULT_DOCKER_USERNAME

    @property
    def effective_issuer(self) -> str:
        if self.provider is ProviderKind.LOCAL:
            return self.issuer or LOCAL_DEFAULT_ISSUER
        if not provider_for(self.provider).uses_discovery:
            return preset_endpoints(self.provider, tenant_id=self.tenant_id).issuer
        if not self.issuer:
            raise ConfigurationError(
                f"Profile '{self.name}' ({self.provider.value}) has no issuer; set one with "
                f"'deviceflow update-profile --name {self.name} --issuer URL'."
            )
        return self.issuer

    @property
    def effective_scopes(self) -> tuple[str, ...]:
        provider = provider_for(self.provider)
        scopes = self.scopes or provider.default_scopes
        extra = tuple(s for s in provider.quirks.always_scopes if s not in scopes)
        return (*scopes, *extra)

    def scopes_for(self, requested: tuple[str, ...]) -> tuple[str, ...]:
        """The scopes to ask for: ``requested`` (or the profile's), plus the provider's musts."""
        if not requested:
            return self.effective_scopes
        provider = provider_for(self.provider)
        extra = tuple(s for s in provider.quirks.always_scopes if s not in requested)
        return (*requested, *extra)

    @property
    def cache_key(self) -> CacheKey:
        """Where a person's tokens are kept (device code and browser share them)."""
        return CacheKey(self.effective_issuer, self.client_id, self.name)

    def cache_key_for(self, flow: FlowKind | None) -> CacheKey:
        """The client's own tokens (client credentials) are kept apart: a request for a
        person's token must never be answered with the client's, nor the other way round."""
        if flow is FlowKind.CLIENT_CREDENTIALS:
            return CacheKey(self.effective_issuer, self.client_id, self.name, subject="client")
        return self.cache_key

    def client_credentials_scopes(self, requested: tuple[str, ...]) -> tuple[str, ...]:
        """Client credentials ask for exactly the scopes given (or the profile's own): no
        provider defaults such as openid, and no offline_access (there is no refresh token;
        Entra wants "{resource}/.default" alone, "client credentials flow" docs)."""
        return requested or self.scopes

    def validate(self) -> Profile:
        validate_profile_name(self.name)
        if not self.client_id:
            raise ConfigurationError(f"Profile '{self.name}' has no client ID.")
        provider = provider_for(self.provider)
        if provider.needs_tenant and not self.tenant_id:
            raise ConfigurationError(f"Profile '{self.name}' needs a tenant ID (--tenant-id).")
        if provider.needs_issuer and not self.issuer:
            raise ConfigurationError(f"Profile '{self.name}' needs an issuer URL (--issuer).")
        if self.issuer:
            check_secure_url(self.issuer, what="issuer")
        for registry in self.docker_registries:
            if normalize_registry(registry) != registry:
                raise ConfigurationError(
                    f"Profile '{self.name}': '{registry}' is not a registry host (write it as "
                    "host or host:port, e.g. ghcr.io)."
                )
        if self.docker_username is not None and not self.docker_username.strip():
            raise ConfigurationError(f"Profile '{self.name}': the docker username is empty.")
        return self

    def to_toml_table(self) -> dict[str, object]:
        table: dict[str, object] = {"provider": self.provider.value, "client_id": self.client_id}
        if self.issuer:
            table["issuer"] = self.issuer
        if self.tenant_id:
            table["tenant_id"] = self.tenant_id
        if self.scopes:
            table["scopes"] = list(self.scopes)
        if self.audience:
            table["audience"] = self.audience
        if self.default_flow is not None:
            table["default_flow"] = self.default_flow.value
        if self.has_client_secret:
            table["client_secret"] = "stored"
        if self.docker_registries:
            table["docker_registries"] = list(self.docker_registries)
        if self.docker_username:
            table["docker_username"] = self.docker_username
        return table

    @staticmethod
    def from_toml_table(name: str, table: Mapping[str, object], where: Path) -> Profile:
        def text(key: str) -> str | None:
            value = table.get(key)
            if value is None:
                return None
            if not isinstance(value, str):
                raise ProfileError(f"In {where}, profile '{name}': '{key}' must be a string.")
            return value

        scopes = table.get("scopes", [])
        if isinstance(scopes, str):
            scopes = scopes.split()
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ProfileError(f"In {where}, profile '{name}': 'scopes' must be a list of strings.")
        # Absent in files written before the docker helper existed: no registries.
        registries = table.get("docker_registries", [])
        if not isinstance(registries, list) or not all(isinstance(r, str) for r in registries):
            raise ProfileError(
                f"In {where}, profile '{name}': 'docker_registries' must be a list of strings."
            )
        hosts = []
        for registry in registries:
            host = normalize_registry(registry)
            if host is None:
                raise ProfileError(
                    f"In {where}, profile '{name}': '{registry}' is not a registry host."
                )
            hosts.append(host)
        try:
            provider = ProviderKind(text("provider") or "local")
            flow_name = text("default_flow")
            flow = FlowKind(flow_name) if flow_name else None
        except ValueError as exc:
            raise ProfileError(f"In {where}, profile '{name}': {exc}.") from None
        return Profile(
            name=name,
            provider=provider,
            client_id=text("client_id") or "",
            issuer=text("issuer"),
            tenant_id=text("tenant_id"),
            scopes=tuple(scopes),
            audience=text("audience"),
            default_flow=flow,
            has_client_secret=table.get("client_secret") == "stored",
            docker_registries=tuple(dict.fromkeys(hosts)),
            docker_username=text("docker_username"),
        )


@dataclass(frozen=True, slots=True)
class ProfilesFile:
    profiles: tuple[Profile, ...] = ()
    default_profile: str | None = None

    def get(self, name: str) -> Profile:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        raise ProfileNotFoundError(name)

    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.profiles)

    def for_registry(self, server_url: str) -> Profile | None:
        """The profile mapping the registry in ``server_url`` (docker's credential helper)."""
        host = normalize_registry(server_url)
        found = [p for p in self.profiles if host is not None and host in p.docker_registries]
        if len(found) > 1:
            names = ", ".join(f"'{p.name}'" for p in found)
            raise ProfileError(
                f"Registry {host} is mapped by several profiles ({names}); keep it in one."
            )
        return found[0] if found else None

    def check_registries(self) -> None:
        """Each registry maps to one profile: docker's ``get`` must know whose token to send."""
        owner: dict[str, str] = {}
        for profile in self.profiles:
            for host in profile.docker_registries:
                if owner.setdefault(host, profile.name) != profile.name:
                    raise ProfileError(
                        f"Registry {host} is already mapped to profile '{owner[host]}'."
                    )

    def resolve_default(self, env_profile: str | None) -> str | None:
        """--profile absent: DEVICEFLOW_PROFILE, then the file's default, then a profile named
        "default", then the only profile."""
        if env_profile:
            return env_profile
        names = self.names()
        if self.default_profile and self.default_profile in names:
            return self.default_profile
        if "default" in names:
            return "default"
        if len(names) == 1:
            return names[0]
        return None


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


@dataclass
class ProfileStore:
    config_dir: Path
    _cache: ProfilesFile | None = field(default=None, init=False, repr=False)

    @property
    def path(self) -> Path:
        return self.config_dir / PROFILES_FILE

    @property
    def index_path(self) -> Path:
        return self.config_dir / INDEX_FILE

    def load(self) -> ProfilesFile:
        if self._cache is not None:
            return self._cache
        import tomllib

        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._cache = ProfilesFile()
            return self._cache
        except OSError as exc:
            raise ProfileError(f"Cannot read {self.path}: {exc.strerror}.") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(
                f"{self.path} is not valid TOML ({exc}); fix or remove it."
            ) from None
        tables = data.get("profiles", {})
        if not isinstance(tables, dict):
            raise ProfileError(f"In {self.path}, 'profiles' must be a table.")
        profiles = []
        for name, table in tables.items():
            if not isinstance(table, dict):
                raise ProfileError(f"In {self.path}, 'profiles.{name}' must be a table.")
            profiles.append(Profile.from_toml_table(name, table, self.path))
        default = data.get("default_profile")
        self._cache = ProfilesFile(tuple(profiles), default if isinstance(default, str) else None)
        self._write_index_if_stale(self._cache)
        return self._cache

    def save(self, profiles: ProfilesFile) -> None:
        import tomli_w

        document: dict[str, object] = {}
        if profiles.default_profile:
            document["default_profile"] = profiles.default_profile
        document["profiles"] = {p.name: p.to_toml_table() for p in profiles.profiles}
        header = (
            "# deviceflow profiles: edit with 'deviceflow update-profile' (or by hand).\n"
            "# Tokens and client secrets are never stored here.\n\n"
        )
        ensure_private_dir(self.config_dir)
        atomic_write(self.path, (header + tomli_w.dumps(document)).encode("utf-8"))
        self._cache = profiles
        self._write_index(profiles)

    # --- changes ---------------------------------------------------------------------------

    def add(self, profile: Profile, *, make_default: bool = False) -> None:
        current = self.load()
        if profile.name in current.names():
            raise ProfileExistsError(profile.name)
        default = current.default_profile
        if make_default or not current.profiles:
            default = profile.name
        updated = ProfilesFile((*current.profiles, profile.validate()), default)
        updated.check_registries()
        self.save(updated)

    def replace(self, old_name: str, profile: Profile, *, make_default: bool = False) -> None:
        current = self.load()
        current.get(old_name)
        if profile.name != old_name and profile.name in current.names():
            raise ProfileExistsError(profile.name)
        profiles = tuple(
            profile.validate() if p.name == old_name else p for p in current.profiles
        )
        default = current.default_profile
        if default == old_name or make_default:
            default = profile.name
        updated = ProfilesFile(profiles, default)
        updated.check_registries()
        self.save(updated)

    def remove(self, name: str) -> Profile:
        current = self.load()
        removed = current.get(name)
        remaining = tuple(p for p in current.profiles if p.name != name)
        default = current.default_profile if current.default_profile != name else None
        self.save(ProfilesFile(remaining, default))
        return removed

    # --- the fast path's index ---------------------------------------------------------------

    def _index_document(self, profiles: ProfilesFile) -> dict[str, object]:
        entries: dict[str, object] = {}
        for profile in profiles.profiles:
            if profile.default_flow is FlowKind.CLIENT_CREDENTIALS:
                continue  # the fast path answers a person's tokens only
            try:
                key = profile.cache_key
                audience = profile.audience or ""
            except ConfigurationError:
                continue
            entries[profile.name] = {
                "name": key.name,
                "scopes": list(profile.effective_scopes),
                "always_scopes": list(provider_for(profile.provider).quirks.always_scopes),
                "audience": audience,
            }
        return {
            "version": INDEX_VERSION,
            "stamp": _stamp(self.path),
            "default": profiles.resolve_default(None),
            "profiles": entries,
        }

    def _write_index(self, profiles: ProfilesFile) -> None:
        with contextlib.suppress(OSError):
            document = self._index_document(profiles)
            atomic_write(self.index_path, (json.dumps(document) + "\n").encode("utf-8"))

    def _write_index_if_stale(self, profiles: ProfilesFile) -> None:
        try:
            existing = json.loads(self.index_path.read_bytes())
        except (OSError, ValueError):
            existing = None
        if not isinstance(existing, dict) or existing != self._index_document(profiles):
            self._write_index(profiles)

