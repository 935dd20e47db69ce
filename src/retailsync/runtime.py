"""Process-wide tuning a long-running hub process applies once it has started.

CPython's cyclic garbage collector runs a young collection every 700 new container objects and,
now and then, a full one over every object alive. A started hub holds ~150,000 objects for its
whole life (modules, routes, schemas, SQLAlchemy's caches, the hub), and every request or event
batch allocates thousands of short-lived ones that reference counting frees anyway. Measured in
``bench/bus.py`` one full collection took ~13 % of a 10,000-event run, and in
``bench/experience.py`` full collections stalled the event loop for milliseconds.

:func:`settle_heap` moves what startup left alive out of the collector's way (``gc.freeze``)
and lets the young generation grow to :data:`YOUNG_GENERATION_THRESHOLD` objects before it is
collected, so most short-lived objects are already gone when it is. Cycles are still
collected; a young collection walks at most that many objects (about a millisecond).
``retailsync serve`` and ``retailsync worker`` call it once the hub has started; tests do not
(a frozen heap outlives every test in the process).
"""

from __future__ import annotations

import gc

__all__ = ["OLDER_GENERATION_THRESHOLD", "YOUNG_GENERATION_THRESHOLD", "settle_heap"]

YOUNG_GENERATION_THRESHOLD = 20_000
"""New container objects (net of those freed) before a young collection (CPython's: 700)."""

OLDER_GENERATION_THRESHOLD = 20
"""Collections of a generation before the next one is collected too (CPython's: 10)."""


def settle_heap() -> None:
    """Freeze what is alive now and space young collections out (call once, after startup)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(
        YOUNG_GENERATION_THRESHOLD, OLDER_GENERATION_THRESHOLD, OLDER_GENERATION_THRESHOLD
    )
