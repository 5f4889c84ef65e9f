#!/usr/bin/env bash
# Xavier vs He vs PyTorch's default init in a deep ReLU network; raw vs standardized features.
# Start the service first (`descent up` in another terminal), then:
#   bash examples/init-scaling/run.sh            # OUT=DIR puts the plots in DIR (default: .)
# The runs go one after another; README.md in this directory says what to expect.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"

for run in he xavier default he-raw xavier-raw; do
  run_spec "$here/$run.yaml"
done
plot val_loss init-scaling --log true
plot train_loss init-scaling --log true
plot val_accuracy init-scaling
finish
