"""The layers stay layers: every module imports alone, and a back-import is refused.

`lint-imports` (run by the test command, contract in pyproject.toml) checks that each
layer imports only from the layers below it. These tests add what it cannot see: that
each module can be imported by itself in a fresh interpreter (an import cycle hidden by
import order fails here), and, as a control, that the contract really fails when a
lower layer imports a higher one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Source-tree checks: the same on every database, so the test command runs them once.
pytestmark = pytest.mark.static

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("liventix", "schema", "resolvers", "db")


def modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


# Run in a fresh interpreter: the heavy third-party libraries are imported once, then
# each of our modules is imported in a forked child, so it starts with none of our
# modules loaded (as `python -c "import X"` would) without paying the interpreter's
# start-up 90 times (a child per core at a time).
IMPORT_EACH_ALONE = """
import os, sys, traceback
import asyncpg, databases, graphql, httpx, orjson, pydantic, pydantic_settings
import starlette.applications, strawberry, stripe, uvicorn
ours = tuple(sys.argv[1].split(","))
assert not [m for m in sys.modules if m.split(".")[0] in ours], "ours already loaded"
running = 0
for module in sys.argv[2:]:
    if running == os.cpu_count():
        os.wait()
        running -= 1
    if os.fork() == 0:
        try:
            __import__(module)
        except BaseException:
            print(module + ": " + traceback.format_exc().strip().splitlines()[-1], flush=True)
            os._exit(1)
        os._exit(0)
    running += 1
while running:
    os.wait()
    running -= 1
"""


@pytest.mark.timeout(300)  # ~20 s on an idle two-core machine; far more when it is busy
def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    names = modules()
    assert len(names) > 50, names
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH_ALONE, ",".join(PACKAGES), *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "", done.stdout


def test_the_import_check_sees_a_module_that_cannot_import_alone(tmp_path: Path) -> None:
    """Control: two modules importing names from each other fail when one comes first."""
    (tmp_path / "cyc").mkdir()
    (tmp_path / "cyc" / "__init__.py").write_text("")
    (tmp_path / "cyc" / "a.py").write_text("from cyc.b import B\nA = 1\n")
    (tmp_path / "cyc" / "b.py").write_text("from cyc.a import A\nB = 2\n")
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH_ALONE, "cyc", "cyc.a"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert "cyc.a: ImportError" in done.stdout, done.stdout + done.stderr


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(tree)},
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The four packages and pyproject.toml, copied so a test may break them."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_layers_contract_holds(tree_copy: Path) -> None:
    done = lint_imports(tree_copy)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("module", "back_import"),
    [
        ("db/core.py", "import schema.errors"),
        ("resolvers/ids.py", "import schema"),
        ("liventix/realtime/hub.py", "import resolvers"),
    ],
)
def test_a_back_import_breaks_the_contract(tree_copy: Path, module: str, back_import: str) -> None:
    """Control: the same check fails once a lower layer imports a higher one."""
    path = tree_copy / module
    path.write_text(path.read_text() + f"\n{back_import}  # noqa\n")
    done = lint_imports(tree_copy)
    assert done.returncode != 0, done.stdout
    assert "BROKEN" in done.stdout
