"""The garbage collector of a ``falproxy serve`` worker, settled once its app is built.

What exists when the app is built (modules, settings, compiled patterns, the app itself)
lives as long as the worker. ``gc.freeze()`` moves it out of every later collection, so
those walk only what calls allocated since; and the youngest generation is collected
after :data:`YOUNG_OBJECTS` allocations instead of CPython's 700, since a call's objects
are nearly all freed by reference counting before a collection would see them. Together
they took about a tenth of a status poll's CPU time (docs/performance.md). Only the
standalone server does this: a mounted proxy leaves its host app's collector alone.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_OBJECTS: Final = 10_000


def settle_heap() -> None:
    """Collect once, freeze what is left, and raise the youngest generation's threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS, middle, old)
