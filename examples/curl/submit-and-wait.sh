#!/usr/bin/env bash
# Submit a job spec, poll until it ends, then print its metrics as CSV.
#   examples/curl/submit-and-wait.sh examples/digits-adam.json
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
spec="${1:-$here/../digits-adam.json}"

job=$(api -X POST "$DESCENT_URL/v1/jobs" -H 'content-type: application/json' \
  -d @"$spec")
id=$(printf '%s' "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "submitted job $id"

while :; do
  job=$(api "$DESCENT_URL/v1/jobs/$id")
  status=$(printf '%s' "$job" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["status"], j["epochs_completed"], sep=" ")')
  echo "status: $status"
  case "$status" in succeeded*|failed*|cancelled*|diverged*) break ;; esac
  sleep 1
done

printf '%s' "$job" | python3 -c 'import json,sys; j=json.load(sys.stdin); print("reason:", j["status_reason"]) if j["status_reason"] else None'
api "$DESCENT_URL/v1/jobs/$id/metrics?format=csv"
