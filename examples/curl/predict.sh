#!/usr/bin/env bash
# Predict with a succeeded job's model: the rows of a CSV file in, predictions out as CSV.
#   examples/curl/predict.sh JOB_ID [rows.csv]
# The CSV's header names every feature the model takes, in any order (the `feature_names`
# of a JSON answer). Without a file, the first rows of the three-kinds example
# (examples/curl/upload-and-train.sh trains on it) are sent, without their target column.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
job="$1"
rows="${2:-}"

if [ -z "$rows" ]; then
  rows=$(mktemp)
  trap 'rm -f "$rows"' EXIT
  cut -d, -f1-3 "$here/../data/three-kinds.csv" | head -6 >"$rows"
fi

# The CSV as the body; --data-binary keeps its line breaks. JSON works too:
#   -H 'content-type: application/json' -d '{"rows": [[0.057, 2.625, 3.7]]}'
api -X POST "$DESCENT_URL/v1/jobs/$job/predict?format=csv" \
  -H 'content-type: text/csv' --data-binary @"$rows"
