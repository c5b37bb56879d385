#!/bin/bash
# The seed's "In Scripts" example for deviceflow: sign in (device flow), then call an API.
# API_URL defaults to Microsoft Graph's /me, as in the original.
set -euo pipefail

echo "Authenticating with deviceflow..."
echo "Please complete the sign-in process on another device."
echo

# Start device code flow
if ! TOKEN=$(deviceflow get-token --flow device-code --output json); then
  echo "Authentication failed" >&2
  exit 1
fi

# Extract access token
ACCESS_TOKEN=$(echo "$TOKEN" | jq -r .access_token)

# Use the token
echo "Authentication successful!"
echo "Fetching user profile..."
# The header on stdin: $ACCESS_TOKEN never appears in curl's arguments (visible in ps).
curl -s -H @- "${API_URL:-https://graph.microsoft.com/v1.0/me}" <<EOF | jq .
Authorization: Bearer $ACCESS_TOKEN
EOF
