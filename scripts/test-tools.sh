#!/usr/bin/env bash
# Install what the test suite drives besides Python packages: Chromium for the
# playground's browser tests (Debian's package). The tests fail rather than skip when
# it is missing, so a machine that cannot install it says so here.
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  bash scripts/apt-install.sh chromium
fi
