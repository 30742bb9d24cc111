"""The serving process's garbage-collector settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from api.http.gc_tuning import THRESHOLDS, tune_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_tuning_freezes_what_exists_and_raises_the_thresholds() -> None:
    survivor = [object()]  # a container that exists before tuning
    tune_for_serving()
    assert gc.get_threshold() == THRESHOLDS
    assert gc.get_freeze_count() > 0
    # frozen objects are out of the collector's generations, not freed
    assert not any(o is survivor for o in gc.get_objects())
    assert survivor[0] is not None
