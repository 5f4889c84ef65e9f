# Sourced by the other scripts. DESCENT_URL defaults to the embedded `descent up`.
DESCENT_URL="${DESCENT_URL:-http://127.0.0.1:8000}"
export DESCENT_URL
