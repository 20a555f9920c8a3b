"""The timed part of a LoadGen test, kept clear of the cyclic collector's full passes.

A node process that imported torch (or onnxruntime, pandas, transformers) holds some 350,000
long-lived objects, and one full (generation 2) collection of them takes about 150 ms on a
2-core test node: ten times ResNet50's 15 ms Server bound. Python starts such a pass whenever
the survivors of younger passes grow by a quarter, which a long run's per-query objects can
make happen mid-run, so one pass turned a VALID Server run INVALID. Freezing the heap before
the run (gc.freeze) takes those objects out of every pass during it; objects the run itself
makes are still collected as usual, and the frozen ones go back to the oldest generation after.
No full collection first: it would cost the same 150 ms before every run, and garbage frozen
with the rest is only kept for the run's length.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze every object for the block, and hand them back to the collector after."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
