#!/usr/bin/env bash
# Create the virtualenv, install the API with its pinned dependencies, and install
# GraphiQL's assets from the npm registry. Safe to re-run: it does only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtualenv in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "==> installing Python dependencies"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e ".[dev]"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi

web_stamp="web/node_modules/.installed-$(sha256sum web/package-lock.json | cut -c1-16)"
if [ ! -f "$web_stamp" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    bash scripts/apt-install.sh npm || true  # without it, the page explains what is missing
  fi
  if command -v npm >/dev/null 2>&1; then
    echo "==> installing GraphiQL assets (npm ci in web/)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
    touch "$web_stamp"
  else
    echo "warning: npm not found; the API works, but GraphiQL's page will explain how to" \
         "install its assets" >&2
  fi
fi
