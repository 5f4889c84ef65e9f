#!/usr/bin/env bash
# Cancel a job: examples/curl/cancel.sh JOB_ID
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
api -X POST "$DESCENT_URL/v1/jobs/$1/cancel"
echo
