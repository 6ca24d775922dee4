#!/usr/bin/env bash
# apt-install.sh PACKAGE...: install Debian packages as root or with passwordless sudo.
# Exits 1 with a message naming the packages where neither is possible.
set -euo pipefail

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: no apt-get here; install $* by hand" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "error: installing $* needs root (or passwordless sudo)" >&2
  exit 1
fi
echo "==> apt-get install $*"
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" \
  >/dev/null
