#!/bin/sh
# Runs each libFuzzer harness for FUZZ_TIME seconds (default 600) and prints
# one line per harness: runs, coverage, features, corpus size, crashes.
# Usage: scripts/fuzz.sh BUILD_DIR NAME...   (make fuzz / make fuzz-smoke)
# New inputs go to BUILD_DIR/corpus/NAME; the seeds in fuzz/corpus/NAME are
# read only. A crash leaves its input in BUILD_DIR/crashes/ and fails the run.
set -u
cd "$(dirname "$0")/.."
build=$1
shift
time=${FUZZ_TIME:-600}
status=0
summary=""
for name in "$@"; do
  corpus="$build/corpus/$name"
  mkdir -p "$corpus" "$build/crashes"
  dict=""
  [ -f "fuzz/$name.dict" ] && dict="-dict=fuzz/$name.dict"
  log="$build/fuzz_$name.log"
  echo "fuzz_$name: $time s"
  # shellcheck disable=SC2086
  "$build/fuzz_$name" -max_total_time="$time" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$build/crashes/$name-" $dict \
    "$corpus" "fuzz/corpus/$name" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  units=$(ls "$corpus" | wc -l)
  if [ $rc -eq 0 ]; then
    verdict="no crash"
  else
    verdict="CRASH (exit $rc, see $log)"
    status=1
    tail -40 "$log"
  fi
  summary="$summary
fuzz_$name: ${runs:-0} runs in $time s, cov ${cov:-?}, ft ${ft:-?}, corpus $units new units, $verdict"
done
echo "$summary"
exit $status
