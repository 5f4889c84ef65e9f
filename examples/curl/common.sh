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

# api CURL_ARGS...: one request with the token. The answer's body goes to stdout; when
# the API answers an error (4xx, 5xx), its body — {"error": {"message", "fields", …}},
# which says what was wrong — goes to stderr instead and api returns 22, as `curl -f`
# does (which would throw the body away). Connection problems: curl's own message and
# exit status.
api() {
  local body status rc=0
  body=$(mktemp)
  status=$(curl -sS "${auth[@]}" -o "$body" -w '%{http_code}' "$@") || rc=$?
  if [ "$rc" -ne 0 ]; then
    rm -f "$body"
    return "$rc"
  fi
  if [ "$status" -ge 400 ]; then
    echo "HTTP $status from $DESCENT_URL:" >&2
    cat "$body" >&2
    echo >&2
    rm -f "$body"
    return 22
  fi
  cat "$body"
  rm -f "$body"
}
