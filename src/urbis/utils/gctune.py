"""Garbage-collector settings for a long-running server process.

CPython's default first-generation threshold (700 allocations) makes a busy server run a
young-generation collection every few requests, each walking every young container object;
the objects created while starting (modules, compiled term maps, settings) would be walked
again by every older-generation collection. A server moves those into the permanent
generation once started (`gc.freeze`) and collects young objects less often. Reference
counting still frees almost everything at once; only cycles wait for a collection.
"""

from __future__ import annotations

import gc
import os

THRESHOLDS = (20_000, 20, 50)
ENV = "URBIS_GC"  # "default" keeps CPython's settings (to compare)


def tune_gc() -> bool:
    """Freeze what exists now and raise the collection thresholds; False if turned off."""
    if os.environ.get(ENV, "").lower() == "default":
        return False
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return True
