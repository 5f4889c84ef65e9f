#!/usr/bin/env bash
# Nine optimizers train the same network on the same data: which leaves the plateau first?
# Start the service first (`descent up` in another terminal), then:
#   bash examples/optimizers/run.sh            # OUT=DIR puts the plots in DIR (default: .)
# The runs go one after another; README.md in this directory says what to expect.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"

for run in sgd momentum nesterov adagrad rmsprop adam adamw nadam adamax; do
  run_spec "$here/$run.yaml"
done
plot val_loss optimizers
plot val_accuracy optimizers
finish
