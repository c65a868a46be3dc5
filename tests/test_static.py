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
