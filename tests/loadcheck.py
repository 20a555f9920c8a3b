"""How busy the cores are right now, for tests whose Server verdict depends on it."""

from __future__ import annotations

import time
from pathlib import Path


def bare_p99_ms(model: Path) -> float:
    """p99 of a bare batch-1 onnxruntime loop over `model` (one thread): how busy this machine is.

    The same yardstick as the harness tests: on an idle machine the small ResNet50 takes
    ~1.5 ms; above a third of the 15 ms Server bound the cores are saturated by other work
    and no Server run here can be expected VALID.
    """
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    x = np.zeros((1, 3, 224, 224), dtype=np.float32)
    sess.run(["ArgMax:0"], {"input_tensor:0": x})
    times = []
    for _ in range(300):
        t0 = time.perf_counter()
        sess.run(["ArgMax:0"], {"input_tensor:0": x})
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 99)) * 1e3
