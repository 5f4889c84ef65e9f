#!/usr/bin/env bash
# Seven learning-rate schedules on the same SGD with momentum and the same base rate.
# Start the service first (`descent up` in another terminal), then:
#   bash examples/schedules/run.sh            # OUT=DIR puts the plots in DIR (default: .)
# The runs go one after another; README.md in this directory says what to expect.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"

for run in constant step exponential time-based cosine one-cycle plateau; do
  run_spec "$here/$run.yaml"
done
plot val_loss schedules
plot lr schedules --log true    # exponential decay is a straight line here
finish
