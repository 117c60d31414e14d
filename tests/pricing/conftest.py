"""Every pricing test starts with small arrays on numpy, whatever earlier tests loaded (see black._LOADED)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.pricing import black


@pytest.fixture(autouse=True)
def small_arrays_on_numpy() -> Iterator[None]:
    for event in black._LOADED.values():
        event.clear()
    yield
    for event in black._LOADED.values():
        event.clear()
