#!/usr/bin/env bash
# Full-batch GD vs SGD (batch 1) vs mini-batch (32): same data, optimizer and epochs.
# Start the service first (`descent up` in another terminal), then:
#   bash examples/batch-size/run.sh            # OUT=DIR puts the plots in DIR (default: .)
# The runs go one after another; README.md in this directory says what to expect.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"

for run in full-batch stochastic mini-batch; do
  run_spec "$here/$run.yaml"
done
plot val_loss batch-size
plot epoch_seconds batch-size --log true
finish
