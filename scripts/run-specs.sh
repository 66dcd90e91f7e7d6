#!/bin/sh
# Runs the busted specs against the built module and CLI, then prints the
# closing line CI reads: "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${LUAFLOW_BUILD:-build}
export LUAFLOW_BIN="$PWD/$BUILD/luaflow"
export LUAFLOW_ROOT="$PWD"
export LUA_CPATH="$PWD/$BUILD/?.so;;"
# Specs that want log lines ask for them; the rest keep the output readable.
export LUAFLOW_LOG_LEVEL=${LUAFLOW_LOG_LEVEL:-CRITICAL}
export LUA_PATH="$PWD/spec/?.lua;$PWD/spec/support/?.lua;;"
if [ -n "${LUAFLOW_SANITIZE:-}" ]; then
  # The sanitizer runtime must come first when lua5.4 loads an ASan module;
  # leaks are looked for in the busted process and in every child.
  export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LUAFLOW_CHILD_ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
fi
if [ -n "${LUAFLOW_TSAN:-}" ]; then
  # ThreadSanitizer (make check-threads): its runtime first, any report fails.
  export LD_PRELOAD="$(gcc -print-file-name=libtsan.so)"
  export TSAN_OPTIONS="halt_on_error=1 abort_on_error=1 report_signal_unsafe=0 second_deadlock_stack=1"
fi
out=$(mktemp)
# `luaflow run` records into a run store under XDG_STATE_HOME: never the
# real home's (a spec that looks at the store sets its own).
state=$(mktemp -d)
export XDG_STATE_HOME="$state"
unset LUAFLOW_STORE
trap 'rm -f "$out" "$out.passed" "$out.failed"; rm -rf "$state"' EXIT
# The C unit tests (make test sets LUAFLOW_CTEST): their TAP lines count too.
ctest_status=0
if [ -n "${LUAFLOW_CTEST:-}" ]; then
  "$LUAFLOW_CTEST" >"$out" 2>&1
  ctest_status=$?
  cat "$out"
  if [ "$ctest_status" -ne 0 ] && ! grep -q '^not ok ' "$out"; then
    echo "not ok - C unit tests: $LUAFLOW_CTEST exited with status $ctest_status"
  fi
  grep -c '^ok ' "$out" >"$out.passed"
  grep -c '^not ok ' "$out" >"$out.failed"
fi
lua5.4 /usr/bin/busted -o TAP "${@:-spec}" >"$out" 2>&1
status=$?
cat "$out"
passed=$(grep -c '^ok ' "$out")
failed=$(grep -c '^not ok ' "$out")
if [ -n "${LUAFLOW_CTEST:-}" ]; then
  passed=$((passed + $(cat "$out.passed")))
  failed=$((failed + $(cat "$out.failed")))
  [ "$ctest_status" -ne 0 ] && [ "$(cat "$out.failed")" -eq 0 ] && failed=$((failed + 1))
  rm -f "$out.passed" "$out.failed"
fi
# busted's own exit status counts too: a crash, or a leak or sanitizer report
# when the process ends, fails the run even with every spec passed
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "busted exited with status $status after the specs (see above)"
  failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
