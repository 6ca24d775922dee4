"""Run every benchmark in this directory, one after another, with modest defaults.

Each benchmark is its own script (`bench/flash_sale.py`, `bench/feed.py`,
`bench/reads.py`, `bench/fanout.py`, `bench/notifications.py`, `bench/export.py`) with its own
options; this runs the ones present with their defaults and prints their output as it
comes. Extra arguments are passed to every script (e.g. `--help`). Exit status: non-zero
if any benchmark failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ORDER = ("flash_sale.py", "feed.py", "reads.py", "fanout.py", "notifications.py", "export.py")


def main(argv: list[str]) -> int:
    scripts = [BENCH_DIR / name for name in ORDER if (BENCH_DIR / name).is_file()]
    if not scripts:
        print("no benchmarks found in bench/")
        return 0
    failed = []
    for script in scripts:
        print(f"==> {script.name}", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(script), *argv], cwd=BENCH_DIR.parent)
        elapsed = time.perf_counter() - started
        status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        print(f"<== {script.name}: {status} in {elapsed:.1f}s\n", flush=True)
        if result.returncode != 0:
            failed.append(script.name)
    missing = [name for name in ORDER if not (BENCH_DIR / name).is_file()]
    if missing:
        print("not present: " + ", ".join(missing))
    if failed:
        print("failed: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
