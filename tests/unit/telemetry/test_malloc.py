"""glibc tuning: applied on glibc, never over an operator's own MALLOC_* settings."""

from __future__ import annotations

import platform

import pytest

from coderouterd.telemetry.malloc import tune_malloc


def test_explicit_malloc_settings_win() -> None:
    assert tune_malloc({"MALLOC_ARENA_MAX": "2"}) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_applied_on_glibc() -> None:
    assert tune_malloc({}) is True
