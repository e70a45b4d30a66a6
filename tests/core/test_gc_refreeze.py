"""The process owner's collector settings (``supervisor/cli/run.py``): a slow full collection
freezes its survivors, at most once per interval, and only a full one."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest

from supervisor.cli.run import _Refreeze
from supervisor.ingest.lane import LoopWatch


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def _collection(refreeze: _Refreeze, generation: int, seconds: float) -> None:
    refreeze("start", {"generation": generation})
    time.sleep(seconds)
    refreeze("stop", {"generation": generation, "collected": 0, "uncollectable": 0})


def test_a_slow_full_collection_freezes_its_survivors_once_per_interval(thawed: None) -> None:
    watch = LoopWatch()
    refreeze = _Refreeze(watch, threshold_ms=5.0, min_interval_s=60.0)
    kept = [[i] for i in range(1000)]  # survivors the collector tracks
    assert gc.get_freeze_count() == 0
    _collection(refreeze, 2, 0.001)  # a fast full collection: nothing to gain
    assert gc.get_freeze_count() == 0 and watch.gc_refreezes == 0
    _collection(refreeze, 1, 0.01)  # slow, but not a full one
    assert gc.get_freeze_count() == 0
    _collection(refreeze, 2, 0.01)
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept) and watch.gc_refreezes == 1
    assert watch.report()["gc_refreezes"] == 1
    _collection(refreeze, 2, 0.01)  # within the interval: no second freeze
    assert watch.gc_refreezes == 1


def test_a_real_collection_goes_through_the_callback(thawed: None) -> None:
    watch = LoopWatch()
    refreeze = _Refreeze(watch, threshold_ms=0.0, min_interval_s=0.0)
    gc.callbacks.append(refreeze)
    try:
        kept = [{"n": [i]} for i in range(1000)]
        gc.collect()
    finally:
        gc.callbacks.remove(refreeze)
    assert watch.gc_refreezes == 1 and gc.get_freeze_count() >= len(kept)
