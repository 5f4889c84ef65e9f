#!/usr/bin/env bash
# The worker fleet and its queues (needs an admin's token): examples/curl/workers.sh [STATES]
# e.g. `examples/curl/workers.sh lost,stopped` lists those workers, however old.
# On an error the API's JSON body is printed and the script exits non-zero.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
curl -sS --fail-with-body "${auth[@]}" -G "$DESCENT_URL/v1/workers" ${1:+--data-urlencode "state=$1"}
echo
