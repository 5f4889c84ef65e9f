#!/usr/bin/env bash
# The optimization lab on digits: an LR range test, 1cycle with its suggested peak
# against two constant rates, and the loss landscape of the 1cycle run with the path its
# weights took. Start the service first (`descent up` in another terminal), then:
#   bash examples/lab/run.sh            # OUT=DIR puts the plots in DIR (default: .)
# README.md in this directory says what to expect and the figures we measured.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"

run_spec "$here/range-test.yaml"
range_test=${ids[0]}
"$descent" result "$range_test"
"$descent" lab-plot "$range_test" --view range_test -o "$OUT/lab-range-test.png"

for run in one-cycle-auto constant-auto constant; do
  run_spec "$here/$run.yaml"
done
one_cycle=${ids[1]}
"$descent" show "$one_cycle" | grep -E '^(auto lr|best)'
"$descent" plot "${ids[@]:1}" -m val_accuracy -o "$OUT/lab-val_accuracy.png"

# The landscape of the 1cycle run: PCA directions of its per-epoch weights.
echo "== landscape of the 1cycle run"
landscape=$("$descent" landscape "$one_cycle" --directions pca)
follow_job "$landscape" "landscape"
"$descent" result "$landscape"
"$descent" lab-plot "$landscape" --view contour -o "$OUT/lab-landscape-contour.png"
"$descent" lab-plot "$landscape" --view surface -o "$OUT/lab-landscape-surface.png"
"$descent" lab-plot "$landscape" --view interpolation -o "$OUT/lab-interpolation.png"
finish
