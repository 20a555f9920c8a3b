"""The timed part of a LoadGen test, kept clear of the cyclic collector's full passes.

A node process that imported torch (or onnxruntime, pandas, transformers) holds some 350,000
long-lived objects, and one full (generation 2) collection of them takes about 150 ms on a
2-core test node: ten times ResNet50's 15 ms Server bound. Python starts such a pass whenever
the survivors of younger passes grow by a quarter, which a long run's per-query objects can
make happen mid-run, so one pass turned a VALID Server run INVALID. Collecting once before the
run, untimed, and freezing what is left (gc.freeze) takes those objects out of every pass
during the run; objects the run itself makes are still collected as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Collect, freeze what survives for the block, and hand it back to the collector after."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
