#!/usr/bin/env bash
# Install what the test suite drives besides Python packages: Chromium for the
# playground's browser tests (Debian's package), promtool for the alert rules' checks and
# unit tests (Debian's `prometheus` package ships it) and the Node clients of the client
# tests (npm ci in tests/clients/). The tests fail rather than skip when one is missing,
# so a machine that cannot install it says so here.
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  bash scripts/apt-install.sh chromium
fi

# promtool (tests/test_alerts.py: `promtool check rules`, `check config`, `test rules`).
# The package also installs a Prometheus server, which hosts with systemd start as a
# service (`systemctl disable --now prometheus` stops it); only promtool is used here.
if [ -z "${PROMTOOL:-}" ] && ! command -v promtool >/dev/null 2>&1; then
  bash scripts/apt-install.sh prometheus
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
