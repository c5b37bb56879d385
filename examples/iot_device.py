"""An IoT device that signs in once with the device flow and then sends telemetry.

The seed's IoT example shelled out to a CLI and kept one token forever; with the library the
token renews itself (cached, refreshed silently, a new device login only when the refresh token
is gone), and the code is shown through a callback you control (a display, an LED matrix, a log).

    deviceflow create-profile --name sensor --issuer https://id.example.com --client-id sensor-01
    DEVICEFLOW_PROFILE=sensor TELEMETRY_URL=https://api.example.com/telemetry python iot_device.py

Environment: DEVICEFLOW_PROFILE (and the other DEVICEFLOW_* settings, shared with the CLI),
TELEMETRY_URL, TELEMETRY_PERIOD (seconds, default 60), TELEMETRY_ROUNDS (default 0: forever).
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import httpx

from deviceflow.client import DeviceCode, DeviceFlowClient, DeviceFlowError


def show_code(code: DeviceCode) -> None:
    """Tell the person what to do (here: stdout; on a device, its screen)."""
    print("Starting device authentication...")
    print(f"On your phone or computer, open {code.verification_uri}")
    print(f"and enter the code {code.user_code}", flush=True)


def collect_sensor_data() -> dict[str, float]:
    thermal = Path("/sys/class/thermal/thermal_zone0/temp")
    try:
        celsius = int(thermal.read_text()) / 1000
    except (OSError, ValueError):
        celsius = round(random.uniform(18.0, 24.0), 1)
    return {"temperature_c": celsius, "time": time.time()}


def main() -> int:
    url = os.environ.get("TELEMETRY_URL", "https://api.example.com/telemetry")
    period = float(os.environ.get("TELEMETRY_PERIOD", "60"))
    rounds = int(os.environ.get("TELEMETRY_ROUNDS", "0"))
    try:
        with (
            DeviceFlowClient.from_profile(on_code=show_code) as device,
            httpx.Client(auth=device.auth(), timeout=30) as http,
        ):
            device.get_token()  # sign in up front, before the first reading
            print("Authentication successful!", flush=True)
            sent = 0
            while rounds == 0 or sent < rounds:
                response = http.post(url, json=collect_sensor_data())
                response.raise_for_status()
                sent += 1
                print(f"telemetry {sent} sent ({response.status_code})", flush=True)
                if rounds == 0 or sent < rounds:
                    time.sleep(period)
    except DeviceFlowError as exc:
        print(f"Authentication failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
