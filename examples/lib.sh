# Sourced by each comparison's run.sh (examples/*/run.sh): submit its specs one after
# another with the `descent` CLI, follow each to its end, then overlay their curves.
#
#   bash examples/optimizers/run.sh               # plots into the current directory
#   OUT=/tmp/plots bash examples/optimizers/run.sh
#
# The CLI finds the server itself: DESCENT_URL and DESCENT_TOKEN when set, else the
# embedded `descent up` on 127.0.0.1:8000 and its local token.

if command -v descent >/dev/null 2>&1; then
  descent=descent
else
  descent="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/descent"
fi

OUT="${OUT:-.}"
mkdir -p "$OUT"

ids=()        # job ids, in the order submitted: the plots' legend order
unexpected=() # runs that did not end as their example expects

# run_spec SPEC [EXPECTED_EXIT]
# Submit SPEC, show its progress until it ends (`descent follow`), and add its id to
# `ids`. EXPECTED_EXIT is the exit status of `descent follow` that the example expects
# for this run: 0 succeeded (the default), 3 failed, 4 diverged, 5 cancelled. Any other
# ending is noted in `unexpected`, and the script carries on with the next run.
run_spec() {
  local spec=$1 expected=${2:-0} id
  echo "== $(basename "$spec")"
  id=$("$descent" submit "$spec") # prints the job id alone; a refused spec stops the script
  follow_job "$id" "$(basename "$spec")" "$expected"
}

# follow_job ID NAME [EXPECTED_EXIT]
# Show job ID's progress until it ends and add it to `ids`, as run_spec does for a job
# it submitted (for jobs submitted otherwise, e.g. `descent landscape`).
follow_job() {
  local id=$1 name=$2 expected=${3:-0} rc
  ids+=("$id")
  if "$descent" follow "$id"; then rc=0; else rc=$?; fi
  if [ "$rc" -eq 130 ]; then
    echo "stopped; job $id keeps running (descent cancel $id)" >&2
    exit 130
  fi
  if [ "$rc" -ne "$expected" ]; then
    unexpected+=("$name: exit $rc, expected $expected (job $id)")
  fi
}

# plot METRIC PREFIX [OPTION ...]: every run's METRIC on one chart, written to
# $OUT/PREFIX-METRIC.png; OPTIONs go to `descent plot` (e.g. --log true).
plot() {
  local metric=$1 prefix=$2
  shift 2
  "$descent" plot "${ids[@]}" -m "$metric" "$@" -o "$OUT/$prefix-$metric.png"
}

# finish: list the runs that ended unexpectedly; fail when there were any.
finish() {
  if [ "${#unexpected[@]}" -gt 0 ]; then
    echo "runs that did not end as expected:" >&2
    printf '  %s\n' "${unexpected[@]}" >&2
    return 1
  fi
  echo "all ${#ids[@]} runs ended as expected"
}
