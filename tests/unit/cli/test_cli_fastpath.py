"""The cached get-token fast path: same answer as the full CLI, same directories as
platformdirs, and a step aside whenever it is not sure."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

import platformdirs
import pytest
from tests.unit.cli.clienv import invoke

from deviceflow.cli import fastpath
from deviceflow.client.cache import CacheRecord, StoreKind, TokenCache
from deviceflow.client.profiles import ProfileStore
from deviceflow.client.tokens import TokenSet


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"XDG_CONFIG_HOME": "/x/cfg", "XDG_DATA_HOME": "/x/data"},
        {"XDG_CONFIG_HOME": "  ", "XDG_DATA_HOME": ""},
    ],
    ids=["defaults", "xdg-set", "xdg-blank"],
)
def test_directories_match_platformdirs(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]
) -> None:
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    env = dict(os.environ)
    assert fastpath.xdg_dir(env, "XDG_CONFIG_HOME", "~/.config") == platformdirs.user_config_dir(
        "deviceflow", appauthor=False
    )
    assert fastpath.xdg_dir(env, "XDG_DATA_HOME", "~/.local/share") == platformdirs.user_data_dir(
        "deviceflow", appauthor=False
    )


def seed_token(home: Path, *, expires_in: float = 3600, scopes: tuple[str, ...] = ()) -> None:
    assert invoke(home, "create-profile", "--name", "p", "--client-id", "c").code == 0
    profile = ProfileStore(home / "config").load().get("p")
    now = time.time()
    token = TokenSet(
        access_token="at-cached",
        expires_at=now + expires_in,
        scope=("openid",),
        refresh_token="rt",
        id_token="idt",
        issued_at=now,
    )
    record = CacheRecord(profile.cache_key).with_token(
        scopes or profile.effective_scopes, None, token, now=now
    )
    TokenCache(home / "data", StoreKind.FILE, notify=None).save(record)


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {
        "DEVICEFLOW_CONFIG_DIR": str(home / "config"),
        "DEVICEFLOW_DATA_DIR": str(home / "data"),
        "DEVICEFLOW_TOKEN_STORE": "file",
        **extra,
    }


def fast(home: Path, *argv: str, **extra: str) -> tuple[int | None, str]:
    out = io.StringIO()
    real = sys.stdout
    sys.stdout = out
    try:
        code = fastpath.try_cached_get_token(["get-token", *argv], env_for(home, **extra))
    finally:
        sys.stdout = real
    return code, out.getvalue()


def test_fast_and_full_paths_print_the_same(tmp_path: Path) -> None:
    seed_token(tmp_path)
    for argv in (
        ["--profile", "p"],
        ["p"],
        ["p", "--profile", "p"],
        ["-o", "json"],
        ["--output=json", "--no-qr"],
        ["-o", "json", "p"],
    ):
        code, fast_out = fast(tmp_path, *argv)
        assert code == 0
        full = invoke(tmp_path, "get-token", *argv)
        assert full.code == 0
        if "json" in " ".join(argv):
            a, b = json.loads(fast_out), json.loads(full.out)
            assert abs(a.pop("expires_in") - b.pop("expires_in")) <= 1
            assert a == b
            assert "refresh_token" not in a
            assert a["id_token"] == "idt"
        else:
            assert fast_out == full.out == "at-cached\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["--force"],
        ["--profile"],
        ["--flow", "client-credentials"],
        ["--audience", "x"],
        ["--scope", "other"],
        ["--help"],
        ["-o", "yaml"],
        ["p", "--profile", "q"],
        ["p", "q"],
        ["nope"],
    ],
    ids=[
        "force",
        "missing-value",
        "other-flow",
        "audience",
        "uncached-scope",
        "help",
        "bad-output",
        "two-different-names",
        "two-positionals",
        "unknown-positional",
    ],
)
def test_steps_aside_when_unsure(tmp_path: Path, argv: list[str]) -> None:
    seed_token(tmp_path)
    assert fast(tmp_path, *argv) == (None, "")


def test_steps_aside_for_tokens_about_to_expire(tmp_path: Path) -> None:
    seed_token(tmp_path, expires_in=59)
    assert fast(tmp_path) == (None, "")


def test_steps_aside_when_the_toml_was_edited_by_hand(tmp_path: Path) -> None:
    seed_token(tmp_path)
    toml = tmp_path / "config" / "profiles.toml"
    toml.write_text(toml.read_text().replace('client_id = "c"', 'client_id = "other"'))
    assert fast(tmp_path) == (None, "")


def test_steps_aside_for_the_keyring_and_debug(tmp_path: Path) -> None:
    seed_token(tmp_path)
    assert fast(tmp_path, DEVICEFLOW_TOKEN_STORE="keyring") == (None, "")
    assert fast(tmp_path, DEVICEFLOW_DEBUG="1") == (None, "")


def test_requested_subset_of_cached_scopes_is_served(tmp_path: Path) -> None:
    seed_token(tmp_path)
    code, out = fast(tmp_path, "--scope", "openid")
    assert (code, out) == (0, "at-cached\n")


def test_iso_expiry_format() -> None:
    assert fastpath.format_expiry(0) == "1970-01-01T00:00:00Z"
    assert fastpath.format_expiry(None) is None


@pytest.mark.parametrize(
    "body",
    [
        {"a": "x", "b": 1, "c": None, "d": 2.5, "e": True},
        {"weird": 'é"\\\n\u2028\x00', "n": -3},
        {},
    ],
    ids=["flat", "escapes", "empty"],
)
def test_json_without_the_json_package_matches_json(body: dict[str, object]) -> None:
    assert fastpath.dumps_flat(body) == json.dumps(body, indent=2)
    assert fastpath.loads(json.dumps(body).encode()) == body


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"a": NaN}', b'{"a": 1} x', b"\xff"],
    ids=["empty", "truncated", "nan", "trailing", "not-utf8"],
)
def test_fast_json_refuses_what_json_refuses(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r"JSON|trailing|codec|Expecting"):
        fastpath.loads(raw)


def test_cached_path_imports_nothing_heavy(tmp_path: Path) -> None:
    import subprocess
    import sys

    seed_token(tmp_path)
    code = (
        "import sys, io; from deviceflow.cli import fastpath; sys.stdout = io.StringIO();"
        "assert fastpath.try_cached_get_token(['get-token']) == 0;"
        "sys.stdout = sys.__stdout__;"
        "print(sorted(m for m in ('json', 're', 'click', 'httpx', 'keyring', 'rich', 'segno',"
        " 'tomllib', 'platformdirs') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env_for(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_positional_and_option_naming_different_profiles_is_a_usage_error(
    tmp_path: Path,
) -> None:
    seed_token(tmp_path)
    full = invoke(tmp_path, "get-token", "p", "--profile", "q")
    assert full.code == 2
    assert full.out == ""
    assert "'p' and --profile 'q' differ" in full.err
