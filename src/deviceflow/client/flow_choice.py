"""Which flow signs a person in when neither ``--flow`` nor the profile names one.

The browser flow (RFC 8252) needs a browser on this machine that can reach its loopback
listener; the device flow (RFC 8628) works from anywhere. ``choose_flow`` is a pure decision
over the facts ``machine_facts`` gathers, so it is tested as a table (docs/cli.md, "Flows").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deviceflow.client.profiles import FlowKind

__all__ = ["FlowChoice", "MachineFacts", "announce", "choose_flow", "machine_facts"]

# Files a container runtime leaves behind: Docker's /.dockerenv, Podman's /run/.containerenv.
CONTAINER_FILES = ("/.dockerenv", "/run/.containerenv")
# Words in /proc/1/cgroup (cgroup v1) when PID 1 runs under a container runtime.
CGROUP_HINTS = ("docker", "kubepods", "containerd", "libpod", "lxc")


@dataclass(frozen=True, slots=True)
class MachineFacts:
    platform: str  # sys.platform
    environ: Mapping[str, str]
    container: bool  # a container file or cgroup hint was found


@dataclass(frozen=True, slots=True)
class FlowChoice:
    flow: FlowKind
    reason: str  # why, for the one line on stderr ("" when the person or the profile chose)
    automatic: bool


def choose_flow(
    explicit: FlowKind | None, profile_default: FlowKind | None, facts: MachineFacts
) -> FlowChoice:
    """``--flow``, else the profile's ``default_flow``, else: the device code over SSH, in a
    container, or on Linux/BSD without ``$DISPLAY``/``$WAYLAND_DISPLAY``; the browser otherwise
    (a desktop: macOS, Windows, or a Unix with a display)."""
    if explicit is not None:
        return FlowChoice(explicit, "", automatic=False)
    if profile_default is not None:
        return FlowChoice(profile_default, "", automatic=False)
    env = facts.environ
    if env.get("SSH_CONNECTION") or env.get("SSH_TTY") or env.get("SSH_CLIENT"):
        return FlowChoice(FlowKind.DEVICE_CODE, "this is an SSH session", automatic=True)
    if facts.container or env.get("container"):
        # systemd-nspawn and Podman also set $container for PID 1's environment.
        return FlowChoice(FlowKind.DEVICE_CODE, "this is a container", automatic=True)
    desktop = facts.platform == "darwin" or facts.platform.startswith(("win", "cygwin"))
    if not desktop and not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        return FlowChoice(
            FlowKind.DEVICE_CODE, "there is no display ($DISPLAY, $WAYLAND_DISPLAY)", automatic=True
        )
    return FlowChoice(
        FlowKind.INTERACTIVE_BROWSER, "this machine has a display and no SSH session",
        automatic=True,
    )


def _in_container(root: Path = Path("/")) -> bool:
    if any((root / name.lstrip("/")).exists() for name in CONTAINER_FILES):
        return True
    try:
        cgroup = (root / "proc/1/cgroup").read_text(errors="replace")
    except OSError:
        return False
    return any(hint in cgroup for hint in CGROUP_HINTS)


def machine_facts(
    environ: Mapping[str, str] | None = None, *, root: Path = Path("/")
) -> MachineFacts:
    """The facts ``choose_flow`` needs, read from this process and machine."""
    return MachineFacts(
        platform=sys.platform,
        environ=os.environ if environ is None else environ,
        container=_in_container(root),
    )


def announce(choice: FlowChoice) -> str:
    """The one line on stderr for an automatic choice."""
    if choice.flow is FlowKind.INTERACTIVE_BROWSER:
        other = "--flow device-code"
    else:
        other = "--flow interactive-browser"
    return f"Signing in with the {choice.flow.value} flow: {choice.reason} ({other} to change)."
