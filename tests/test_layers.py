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
from concurrent.futures import ThreadPoolExecutor
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


def import_alone(module: str) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return module, "" if done.returncode == 0 else done.stderr.strip().splitlines()[-1]


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    names = modules()
    assert len(names) > 50, names
    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = {name: error for name, error in pool.map(import_alone, names) if error}
    assert failures == {}


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
