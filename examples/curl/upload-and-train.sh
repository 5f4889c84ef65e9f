#!/usr/bin/env bash
# Upload a CSV dataset, then train a job on it.
#   examples/curl/upload-and-train.sh [examples/data/three-kinds.csv] [target-column]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
csv="${1:-$here/../data/three-kinds.csv}"
target="${2:-kind}"

ds=$(api -X POST "$DESCENT_URL/v1/datasets" -F "file=@$csv" -F "target=$target")
id=$(printf '%s' "$ds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "dataset $id: $ds"

spec=$(mktemp)
trap 'rm -f "$spec"' EXIT
cat >"$spec" <<JSON
{"dataset": {"name": "uploaded", "id": "$id"},
 "model": {"kind": "mlp", "hidden": [32]},
 "optimizer": {"name": "adam", "lr": 0.01},
 "training": {"epochs": 30, "batch_size": 16}}
JSON
"$here/submit-and-wait.sh" "$spec"
