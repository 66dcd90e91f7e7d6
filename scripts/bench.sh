#!/bin/sh
# make bench: every row with its target and verdict, run by the shipped
# binary (build/luaflow), as users run luaflow.
set -eu
cd "$(dirname "$0")/.."
BUILD=${LUAFLOW_BUILD:-build}
BIN="$PWD/$BUILD/luaflow"
export BENCH_BIN="$BIN"
export LUA_CPATH="$PWD/$BUILD/examples/?.so;;"
export LUA_PATH="$PWD/bench/?.lua;;"
export LUAFLOW_LOG_LEVEL=CRITICAL
export XDG_STATE_HOME="${TMPDIR:-/tmp}/luaflow-bench-state"

# Handler cost per call from callgrind's instruction counts (repeatable,
# unlike a difference of two timings): the instructions of the run phase
# (flow_run, inclusive), so building the flow and the GC's pacing there
# do not count.
N=${BENCH_COST_N:-20000}
instr() {
  out=$(mktemp)
  BENCH_COST=$1 BENCH_COST_N=$N valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$BIN" run bench/handler_cost.lua --no-input --no-store </dev/null >/dev/null 2>&1
  callgrind_annotate --inclusive=yes "$out" 2>/dev/null | awk '/lua_run.c:flow_run/ { gsub(",", "", $1); print $1; exit }'
  rm -f "$out"
}
if command -v valgrind >/dev/null 2>&1; then
  none=$(instr none); lua=$(instr lua); c=$(instr c)
  cost=$(awk -v n="$N" -v a="$none" -v l="$lua" -v c="$c" 'BEGIN {
    lc = (l - a) / (2 * n); cc = (c - a) / (2 * n);
    printf "handler call: Lua %.0f instr, C %.0f instr, C/Lua %.3f (%s)", lc, cc, cc / lc,
      (cc <= lc / 10) ? "C<=1/10 Lua: met" : "C<=1/10 Lua: NOT met" }')
  export BENCH_HANDLER_COST="$cost"
fi
# The run store is off for the rows that measure the engine: its cost has a
# row of its own, which starts luaflow with and without it.
LD_PRELOAD="$PWD/$BUILD/memcount.so" "$BIN" run bench/bench.lua --no-input --no-store </dev/null
