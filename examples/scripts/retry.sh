#!/bin/bash
# The seed's "Error Handling" example for deviceflow: try the sign-in up to three times.
authenticate_with_retry() {
  local max_attempts=3
  local attempt=1

  while [ $attempt -le $max_attempts ]; do
    echo "Authentication attempt $attempt of $max_attempts..."

    if deviceflow get-token --flow device-code --profile "$1" > /dev/null; then
      echo "✓ Authentication successful"
      return 0
    fi

    if [ $attempt -lt $max_attempts ]; then
      echo "Authentication failed. Retrying..."
      sleep "${RETRY_DELAY:-5}"
    fi

    attempt=$((attempt + 1))
  done

  echo "✗ Authentication failed after $max_attempts attempts" >&2
  return 1
}

authenticate_with_retry "${1:-myapp}"
