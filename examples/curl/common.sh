# Sourced by the other scripts. DESCENT_URL defaults to the embedded `descent up`.
# DESCENT_TOKEN is your API token; when it is unset, `descent token` prints the embedded
# default's local one (from the data dir, .descent/ under the current directory).
DESCENT_URL="${DESCENT_URL:-http://127.0.0.1:8000}"
export DESCENT_URL

if [ -z "${DESCENT_TOKEN:-}" ]; then
  descent_cmd=descent
  if ! command -v descent >/dev/null 2>&1; then
    descent_cmd="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.venv/bin/descent"
  fi
  if ! DESCENT_TOKEN="$("$descent_cmd" token)"; then
    echo "no API token: set DESCENT_TOKEN, or run this where \`descent token\` works" >&2
    exit 1
  fi
fi
export DESCENT_TOKEN

# Every request sends it: curl "${auth[@]}" …
auth=(-H "Authorization: Bearer $DESCENT_TOKEN")
