"""Top-1 accuracy of an ImageNet run, as the reference `tools/accuracy-imagenet.py` computes it.

De-duplicates by qsl_idx, decodes the first element of each response with `dtype`, compares
with line qsl_idx of val_map.txt and prints `accuracy=%.3f%, good=N, total=M` (the checker's
`^accuracy=([\\d\\.]+).*`), where total counts unique samples. No hash line: only the
submission assembler appends it (docs/contracts.md).

    python -m fleet.harness.accuracy.imagenet --mlperf-accuracy-file F --imagenet-val-file V
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fleet.harness.accuracy.log import first_responses, read_entries


def _labels(val_map: Path) -> list[int]:
    return [int(line.split()[1]) for line in Path(val_map).read_text(encoding="utf-8").splitlines()
            if line.strip()]


def evaluate(accuracy_log: Path, val_map: Path, dtype: str = "float32") -> tuple[str, float]:
    """(accuracy.txt text, top-1 percent)."""
    labels = _labels(val_map)
    scored = first_responses(read_entries(accuracy_log), len(labels), "images")
    good = 0
    for response in scored:
        data = np.frombuffer(response.data, dtype=dtype)
        if data.size and int(data[0]) == labels[response.qsl_idx]:
            good += 1
    total = len(scored)
    value = 100.0 * good / total if total else 0.0
    return f"accuracy={value:.3f}%, good={good}, total={total}\n", value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ImageNet top-1 from a LoadGen accuracy log.")
    parser.add_argument("--mlperf-accuracy-file", required=True, type=Path)
    parser.add_argument("--imagenet-val-file", required=True, type=Path)
    parser.add_argument("--dtype", default="float32", choices=["float32", "int32", "int64"])
    args = parser.parse_args(argv)
    text, _ = evaluate(args.mlperf_accuracy_file, args.imagenet_val_file, args.dtype)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
