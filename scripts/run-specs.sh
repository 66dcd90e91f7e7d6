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
  # lua5.4 itself is not built with LSan in mind, the luaflow binary is.
  export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LUAFLOW_CHILD_ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
lua5.4 /usr/bin/busted -o TAP "${@:-spec}" | tee "$out"
passed=$(grep -c '^ok ' "$out")
failed=$(grep -c '^not ok ' "$out")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
