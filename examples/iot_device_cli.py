"""The seed page's IoT example, for deviceflow: the device runs the CLI and captures its output.

``capture_output=True`` captures stderr too, where the sign-in instructions used to go: the person
never saw the code. deviceflow shows the instructions on the controlling terminal (/dev/tty) when
stderr is not one, so a device started from a terminal (a console, an SSH session) shows the code
there, while this program reads the token from stdout. Started with no terminal at all (a
systemd service), the instructions are in the captured stderr: log them, or show them on the
device's screen (``--output events`` gives them as JSON lines, see docs/cli.md).

    deviceflow create-profile --name sensor --issuer https://id.example.com --client-id sensor-01
    DEVICEFLOW_PROFILE=sensor TELEMETRY_URL=https://api.example.com/telemetry \\
        python iot_device_cli.py

Environment: DEVICEFLOW_PROFILE (and the other DEVICEFLOW_* settings), TELEMETRY_URL,
TELEMETRY_PERIOD (seconds, default 60), TELEMETRY_ROUNDS (default 0: forever).
iot_device.py does the same with the library, and renews the token as it goes.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx


def authenticate_device() -> str:
    """Authenticate IoT device using device code flow."""
    print("Starting device authentication...", flush=True)
    # Start device code flow
    result = subprocess.run(
        ["deviceflow", "get-token", "--flow", "device-code", "--output", "json"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        # The last line of stderr is the one-sentence reason (docs/cli.md, exit codes).
        reason = result.stderr.strip().splitlines()[-1:] or ["no reason given"]
        raise RuntimeError(f"Authentication failed (exit {result.returncode}): {reason[0]}")
    token_data = json.loads(result.stdout)
    token: str = token_data["access_token"]
    return token


def send_telemetry(token: str, data: dict[str, float]) -> bool:
    """Send telemetry data to the API."""
    response = httpx.post(
        os.environ.get("TELEMETRY_URL", "https://api.example.com/telemetry"),
        headers={"Authorization": f"Bearer {token}"},
        json=data,
        timeout=30,
    )
    return response.status_code == 200


def collect_sensor_data() -> dict[str, float]:
    thermal = Path("/sys/class/thermal/thermal_zone0/temp")
    try:
        celsius = int(thermal.read_text()) / 1000
    except (OSError, ValueError):
        celsius = round(random.uniform(18.0, 24.0), 1)
    return {"temperature_c": celsius, "time": time.time()}


def main() -> int:
    period = float(os.environ.get("TELEMETRY_PERIOD", "60"))
    rounds = int(os.environ.get("TELEMETRY_ROUNDS", "0"))
    # Authenticate once
    try:
        access_token = authenticate_device()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("Authentication successful!", flush=True)
    # Send data
    sent = 0
    while rounds == 0 or sent < rounds:
        ok = send_telemetry(access_token, collect_sensor_data())
        sent += 1
        print(f"telemetry {sent} {'sent' if ok else 'refused'}", flush=True)
        if rounds == 0 or sent < rounds:
            time.sleep(period)
    return 0


if __name__ == "__main__":
    sys.exit(main())
