#!/bin/sh
# make bench: the benchmark table and its verdict line (run phase against its floor).
set -eu
cd "$(dirname "$0")/.."
BUILD=${LUAFLOW_BUILD:-build}
export LUA_CPATH="$PWD/$BUILD/?.so;$PWD/$BUILD/examples/?.so;;"
export LUAFLOW_LOG_LEVEL=CRITICAL

# Handler cost per call from callgrind's instruction counts (repeatable,
# unlike a difference of two timings): the instructions of the run phase
# (flow_run, inclusive), so building the flow and the GC's pacing there
# do not count.
N=${BENCH_COST_N:-20000}
instr() {
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" lua5.4 bench/handler_cost.lua "$1" "$N" >/dev/null 2>&1
  callgrind_annotate --inclusive=yes "$out" 2>/dev/null | awk '/runner.c:flow_run/ { gsub(",", "", $1); print $1; exit }'
  rm -f "$out"
}
if command -v valgrind >/dev/null 2>&1; then
  none=$(instr none); lua=$(instr lua); c=$(instr c)
  cost=$(awk -v n="$N" -v a="$none" -v l="$lua" -v c="$c" 'BEGIN {
    lc = (l - a) / (2 * n); cc = (c - a) / (2 * n);
    printf "handler call: Lua %.0f instr, C %.0f instr, C/Lua %.3f (%s)", lc, cc, cc / lc,
      (cc <= lc / 10) ? "C<=1/10 Lua: met" : "C<=1/10 Lua: NOT met" }')
  echo "$cost"
  export BENCH_HANDLER_COST="$cost"
fi
LD_PRELOAD="$PWD/$BUILD/memcount.so" lua5.4 bench/bench.lua
