"""Which flow get-token uses when neither --flow nor the profile names one: a table."""

from __future__ import annotations

from pathlib import Path

import pytest

from deviceflow.client.flow_choice import MachineFacts, announce, choose_flow, machine_facts
from deviceflow.client.profiles import FlowKind

BROWSER, DEVICE = FlowKind.INTERACTIVE_BROWSER, FlowKind.DEVICE_CODE
X11 = {"DISPLAY": ":0"}


@pytest.mark.parametrize(
    ("platform", "environ", "container", "expected", "reason"),
    [
        ("linux", X11, False, BROWSER, "display"),
        ("linux", {"WAYLAND_DISPLAY": "wayland-0"}, False, BROWSER, "display"),
        ("linux", {}, False, DEVICE, "no display"),
        ("linux", {"DISPLAY": ""}, False, DEVICE, "no display"),
        ("freebsd14", {}, False, DEVICE, "no display"),
        ("linux", {**X11, "SSH_CONNECTION": "10.0.0.2 5022 10.0.0.1 22"}, False, DEVICE, "SSH"),
        ("linux", {**X11, "SSH_TTY": "/dev/pts/1"}, False, DEVICE, "SSH"),
        ("linux", {**X11, "SSH_CLIENT": "10.0.0.2 5022 22"}, False, DEVICE, "SSH"),
        ("darwin", {"SSH_CONNECTION": "1 2 3 4"}, False, DEVICE, "SSH"),
        ("linux", X11, True, DEVICE, "container"),
        ("linux", {**X11, "container": "podman"}, False, DEVICE, "container"),
        ("darwin", {}, False, BROWSER, "display"),
        ("win32", {}, False, BROWSER, "display"),
        ("cygwin", {}, False, BROWSER, "display"),
    ],
)
def test_the_automatic_choice(
    platform: str, environ: dict[str, str], container: bool, expected: FlowKind, reason: str
) -> None:
    choice = choose_flow(None, None, MachineFacts(platform, environ, container))
    assert choice.flow is expected
    assert choice.automatic
    assert reason in choice.reason
    line = announce(choice)
    assert "\n" not in line
    assert line.startswith(f"Signing in with the {expected.value} flow: ")


@pytest.mark.parametrize("flow", list(FlowKind))
def test_flow_option_then_profile_default_win(flow: FlowKind) -> None:
    ssh = MachineFacts("linux", {"SSH_TTY": "/dev/pts/0"}, True)
    assert choose_flow(flow, BROWSER, ssh).flow is flow
    assert choose_flow(None, flow, ssh).flow is flow
    assert not choose_flow(None, flow, ssh).automatic


def write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("files", "container"),
    [
        ({}, False),
        ({".dockerenv": ""}, True),
        ({"run/.containerenv": ""}, True),
        ({"proc/1/cgroup": "0::/init.scope\n"}, False),
        ({"proc/1/cgroup": "12:cpuset:/docker/0123abcd\n"}, True),
        ({"proc/1/cgroup": "11:memory:/kubepods/burstable/pod1\n"}, True),
    ],
    ids=["bare", "docker", "podman", "cgroup2-host", "cgroup-docker", "kubernetes"],
)
def test_container_hints(tmp_path: Path, files: dict[str, str], container: bool) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    assert machine_facts({}, root=tmp_path).container is container
