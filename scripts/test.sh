#!/usr/bin/env bash
# Set up, lint, type-check and run the whole suite: on the embedded PostgreSQL, then
# again on a PostgreSQL server (and Redis) where one is running (CI has both).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/test-tools.sh
VENV="${VENV:-.venv}"
export PATH="$PWD/$VENV/bin:$PATH"

echo "==> ruff"
ruff check .
ruff format --check .
echo "==> mypy (strict)"
mypy
echo "==> import-linter (one-way layers)"
lint-imports

echo "==> pytest on the embedded PostgreSQL"
env -u TEST_DATABASE_URL -u TEST_REDIS_URL pytest "$@"

SERVICE_URL="${TEST_SERVICE_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
if python - "$SERVICE_URL" <<'PY'
import asyncio, sys
import asyncpg
async def main() -> None:
    conn = await asyncio.wait_for(asyncpg.connect(sys.argv[1]), 3)
    await conn.close()
try:
    asyncio.run(main())
except Exception:
    sys.exit(1)
PY
then
  REDIS="${TEST_SERVICE_REDIS_URL:-redis://127.0.0.1:6379/15}"
  if python -c "import redis,sys; redis.Redis.from_url('$REDIS', socket_timeout=2).ping()" 2>/dev/null; then
    export TEST_REDIS_URL="$REDIS"
  fi
  echo "==> pytest on the PostgreSQL server at $SERVICE_URL ${TEST_REDIS_URL:+(and Redis)}"
  TEST_DATABASE_URL="$SERVICE_URL" pytest -m "not static" "$@"
else
  echo "==> no PostgreSQL server at $SERVICE_URL; the embedded run above is the whole suite"
fi
