#!/bin/bash
# entrypoint.sh: sign the container in once (device flow; the code appears in `docker logs`),
# then run the application. The application asks `deviceflow get-token` whenever it needs a
# token: answered from the cache in milliseconds, refreshed silently, never kept in the
# environment where child processes could read it.
set -euo pipefail
echo "Authenticating container..."
deviceflow get-token --flow device-code --profile "${DEVICEFLOW_PROFILE:-container}" > /dev/null

# Run application (it calls deviceflow get-token for its token)
exec "$@"
