#!/bin/sh
# make bench: the benchmark table and its verdict line (DESIGN.md, "The bar").
set -eu
cd "$(dirname "$0")/.."
BUILD=${LUAFLOW_BUILD:-build}
export LUA_CPATH="$PWD/$BUILD/?.so;$PWD/$BUILD/examples/?.so;;"
export LUAFLOW_LOG_LEVEL=CRITICAL

# Handler cost per call from callgrind's instruction counts (repeatable,
# unlike a difference of two timings).
N=${BENCH_COST_N:-20000}
instr() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null lua5.4 bench/handler_cost.lua "$1" "$N" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
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
