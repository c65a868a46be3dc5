"""Start-up memory settings: glibc tuning (applied on glibc, never over an
operator's own MALLOC_* settings) and the cycle collector's."""

from __future__ import annotations

import gc
import platform

import pytest

from coderouterd.telemetry.memory import GC_THRESHOLDS, tune_gc, tune_malloc


def test_explicit_malloc_settings_win() -> None:
    assert tune_malloc({"MALLOC_ARENA_MAX": "2"}) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_applied_on_glibc() -> None:
    assert tune_malloc({}) is True


def test_gc_tuning_freezes_what_exists_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
