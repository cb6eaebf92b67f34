"""When Python's cyclic garbage collector runs during a run (a light module: the command imports it first).

A run allocates millions of short-lived containers while the modules' and codebooks' objects live
throughout; a collection walks every object of the generations it collects and every item of their large
lists, finding little to free. So a run collects rarely (`fewer_collections`), the command imports the
pipeline with the collector off (`imported`), and a few bursts of allocation pause it (`paused`).
"""
from __future__ import annotations

import contextlib
import gc
import importlib

# With Python's default thresholds (700, 10, 10) a demo run's collections took ~1.3 s of CPU across both
# processes; with the long-lived objects frozen and a threshold of 10,000, ~0.6 s (a collection also visits
# every item of the large lists a run builds, e.g. a CSV's cells: 20–140 ms each); with 200,000, none in
# either process of a demo run (scale 100 peaked at 2.8 GiB, against 2.7 before). Cyclic garbage then waits
# until 200,000 more containers are alive than at the last collection.
GC_THRESHOLDS = (200_000, 20, 20)


def _join_oldest() -> None:
    """Every object, the young ones too, into the oldest generation, without a collection: the count that
    would set one off starts again from zero. (It also unfreezes what is frozen: callers check first.)"""
    gc.freeze()
    gc.unfreeze()


@contextlib.contextmanager
def fewer_collections():
    """Collect less often during a run (and freeze what exists before it, as the forked helper shares it
    then: collections in neither process walk it again); the caller's settings come back afterwards."""
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    if not frozen:  # (objects the caller froze stay frozen, and nothing is unfrozen for it)
        gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        if not frozen:
            # the run's own objects join the older ones: restoring the caller's thresholds would otherwise set
            # off a collection of everything the run allocated since its last one (~0.13 s, after the run's
            # work is done), which finds little to free: what a run makes, it mostly returns
            _join_oldest()
        gc.set_threshold(*before)


@contextlib.contextmanager
def paused():
    """The collector off for a while; it is on again afterwards if it was before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def imported(name: str):
    """Import a module with the collector off. The pipeline's imports (pandas, pyarrow, numpy) leave ~60,000
    tracked objects that live as long as the process, and Python's default thresholds collect about 160
    times while they are made, walking them again and again (~0.07 s of a run's start, when only one process
    works). Afterwards they join the oldest generation, so no collection follows at once."""
    with paused():
        try:
            return importlib.import_module(name)
        finally:
            if not gc.get_freeze_count():  # (objects someone froze stay frozen)
                _join_oldest()
