"""The linters and the type checker are part of the suite, so CI holds the code to them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "argv",
    [
        ["ruff", "check", "coderouterd", "tests", "bench"],
        ["ruff", "format", "--check", "coderouterd", "tests", "bench"],
        # Strict over the whole package; its settings are in pyproject.toml.
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_clean(argv: list[str]) -> None:
    run = subprocess.run(  # noqa: S603 - fixed argv, our own interpreter
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_module_is_under_400_lines() -> None:
    """STYLE.md's small units: a module past 400 lines has two reasons to
    change, and is two modules."""
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted((ROOT / "coderouterd").rglob("*.py"))
    }
    assert {path: n for path, n in sizes.items() if n >= 400} == {}
