#!/bin/sh
# Installs the Debian packages luaflow needs; touches nothing when all are present.
set -eu
PKGS="lua5.4 liblua5.4-dev libcurl4-openssl-dev lua-cjson lua-busted gcc make pkg-config
      libssl-dev openssl bsdutils luarocks groff-base libsqlite3-dev zlib1g-dev sqlite3
      graphviz"
# `install-deps.sh fuzz`: clang and its libFuzzer runtime, for make fuzz only
[ "${1:-}" = fuzz ] && PKGS="$PKGS clang libclang-rt-dev"
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
