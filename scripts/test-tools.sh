#!/usr/bin/env bash
# Install what the test suite drives besides Python packages: Chromium for the
# playground's browser tests (Debian's package) and the Node clients of the client tests
# (npm ci in tests/clients/). The tests fail rather than skip when one is missing, so a
# machine that cannot install it says so here.
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  bash scripts/apt-install.sh chromium
fi

# The Node clients that tests/test_clients.py runs (Apollo Client, graphql-ws), from
# tests/clients/package-lock.json; again only when the lockfile changes.
clients_stamp="tests/clients/node_modules/.installed-$(sha256sum tests/clients/package-lock.json | cut -c1-16)"
if [ ! -f "$clients_stamp" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    bash scripts/apt-install.sh npm
  fi
  echo "==> installing the client tests' packages (npm ci in tests/clients/)"
  (cd tests/clients && npm ci --no-audit --no-fund --loglevel=error)
  touch "$clients_stamp"
fi
