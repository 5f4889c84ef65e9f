#!/usr/bin/env bash
# An over-fitting network with no regularizer, then with L2, dropout, batch norm, early stopping.
# Start the service first (`descent up` in another terminal), then:
#   bash examples/regularization/run.sh            # OUT=DIR puts the plots in DIR (default: .)
# The runs go one after another; README.md in this directory says what to expect.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"

for run in none l2 dropout batch-norm early-stopping; do
  run_spec "$here/$run.yaml"
done
plot val_loss regularization
plot train_loss regularization
finish
