#!/bin/bash
# raspberry-pi-auth.sh: the seed's Raspberry Pi example for deviceflow.
# With TENANT_ID set the profile is for Microsoft Entra (as in the original); otherwise it is
# for the server at ISSUER (deviceflow's own by default).
set -euo pipefail

PROFILE="raspberry-pi"
TOKEN_FILE="${TOKEN_FILE:-/home/pi/.deviceflow-token.json}"

# Create profile if it doesn't exist
if ! deviceflow list-profiles | grep -q "$PROFILE"; then
  echo "Creating profile for Raspberry Pi..."
  if [ -n "${TENANT_ID:-}" ]; then
    deviceflow create-profile \
      --name "$PROFILE" \
      --tenant-id "$TENANT_ID" \
      --client-id "$CLIENT_ID" \
      --scope "https://graph.microsoft.com/User.Read"
  else
    deviceflow create-profile \
      --name "$PROFILE" \
      --issuer "${ISSUER:-http://127.0.0.1:8000}" \
      --client-id "$CLIENT_ID" \
      --scope openid --scope offline_access
  fi
fi

# Authenticate using device code
echo "Please sign in using another device..."
deviceflow get-token --flow device-code --profile "$PROFILE" > /dev/null

# Cache token for application (0600: it is a credential)
(umask 077 && deviceflow get-token --profile "$PROFILE" --output json > "$TOKEN_FILE")

echo "Authentication complete! Starting application..."
if [ -n "${APP:-}" ]; then exec $APP; fi
