"""Offline harness throughput against a plain backend loop: RetinaNet, BERT, 3D-UNet, RNN-T, DLRM-v2, GPT-J.

    .venv/bin/python benchmarks/tasks_vs_raw.py [--tasks retinanet,bert-99,3d-unet-99,rnnt,dlrm-v2-99,gptj-99]
                                                [--seconds 5] [--rounds 3]

The same synthetic model and preprocessed samples feed both sides on the same machine in one
run. Raw: `session.run` over contiguous batches at its best batch size (RetinaNet's model is
fixed at batch 1); for 3D-UNet, the reference sliding window over the cases in turn, one
`session.run` per 128^3 window (its share of the time outside onnxruntime is reported); for
RNN-T, a plain PyTorch loop over the utterances with the same model, features and greedy
decoder (its time per phase is reported: features, encoder, decode loop); for DLRM-v2, a
plain PyTorch loop of one forward over the rows of `batch` consecutive aggregated samples,
sliced from tensors that hold every sample's rows (no copies), at its best batch size; for
GPT-J, a plain `model.generate()` loop with the rules' beam search over batches of the prompts
of the `small` set in turn, left padded, at its best batch size (tokens/s is samples/s times
the mean new tokens per article, which do not depend on the batch).
Harness: LoadGen Offline with no tuning flags (it picks threads and batch size itself). Each
harness run sits between two raw runs of the same length and is compared with their mean, so
drifting load from other processes hits both sides alike. Target: harness >= 0.95 of raw.
Prints a table; never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fleet.harness.rules import v3_1 as rules  # noqa: E402
from fleet.harness.runner import Harness  # noqa: E402
from fleet.harness.spec import RunSpec  # noqa: E402
from fleet.harness.synthetic import MARKER  # noqa: E402
from fleet.harness.tasks import get_task  # noqa: E402

RAW_BATCHES = (1, 2, 4, 8, 16, 32)


def assets_of(marker: dict, root: Path) -> tuple[Path, Path]:
    return root / marker["model"]["file"], root / marker["dataset"]["dir"]


def raw_session(model: Path):
    """What a user would write: default session options, CPU."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])


def raw_offline(sess, data: dict[str, np.ndarray], batch: int, seconds: float) -> float:
    """Samples/s of a bare loop over contiguous batches (views, no copies)."""
    count = len(next(iter(data.values())))
    sess.run(None, {k: v[:batch] for k, v in data.items()})
    done, i, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done < 2 * batch:
        if i + batch > count:
            i = 0
        sess.run(None, {k: v[i : i + batch] for k, v in data.items()})
        done += batch
        i += batch
    return done / (time.perf_counter() - start)


class RawWindows:
    """A bare sliding-window loop over whole cases (3D-UNet): session.run per window, timed apart."""

    def __init__(self, sess, images: list[np.ndarray]) -> None:
        from fleet.harness.tasks.unet3d_window import SlidingWindow

        self.sess, self.images, self.window = sess, images, SlidingWindow()
        self.ort_s = self.total_s = 0.0

    def _run(self, patch: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.sess.run(["output"], {"input": patch})[0]
        self.ort_s += time.perf_counter() - t0
        return out

    def __call__(self, sess, data, batch: int, seconds: float) -> float:
        self.window.segment(self.images[0], self._run)  # warm-up
        done, start = 0, time.perf_counter()
        self.ort_s = 0.0
        while time.perf_counter() - start < seconds or done < len(self.images):
            self.window.segment(self.images[done % len(self.images)], self._run)
            done += 1
        self.total_s = time.perf_counter() - start
        return done / self.total_s


class RawRnnt:
    """A bare PyTorch loop (RNN-T): features, encoder and greedy decode per utterance, phases timed."""

    def __init__(self, model: Path, waveforms: list[np.ndarray]) -> None:
        from fleet.harness.tasks.rnnt_features import FeatureExtractor
        from fleet.harness.tasks.rnnt_model import GreedyDecoder, load_rnnt

        self.model = load_rnnt(model)
        self.features = FeatureExtractor()
        self.decoder = GreedyDecoder(self.model.encoder, self.model.prediction, self.model.joint)
        self.waveforms = waveforms
        self.phases = {"features": 0.0, "encoder": 0.0, "decode loop": 0.0}

    def _one(self, waveform: np.ndarray) -> None:
        t0 = time.perf_counter()
        x, lens = self.features(waveform)
        t1 = time.perf_counter()
        enc, enc_lens = self.model.encoder(x, lens)
        t2 = time.perf_counter()
        self.decoder.decode_encoded(enc[0], int(enc_lens[0]))
        t3 = time.perf_counter()
        for name, span in zip(self.phases, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            self.phases[name] += span

    def __call__(self, sess, data, batch: int, seconds: float) -> float:
        import torch

        with torch.inference_mode():
            self._one(self.waveforms[0])  # warm-up
            self.phases = dict.fromkeys(self.phases, 0.0)
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds or done < len(self.waveforms):
                self._one(self.waveforms[done % len(self.waveforms)])
                done += 1
        return done / (time.perf_counter() - start)


class RawDlrm:
    """A bare PyTorch loop (DLRM-v2): one forward over each batch of aggregated samples' rows."""

    def __init__(self, model: Path, samples: list[dict[str, np.ndarray]]) -> None:
        import torch

        from fleet.harness.tasks.dlrm_model import load_dlrm

        self.model = load_dlrm(model).eval()
        self.dense = torch.from_numpy(np.concatenate([s["dense"] for s in samples]))
        self.sparse = torch.from_numpy(np.concatenate([s["sparse"] for s in samples]))
        self.offsets = np.concatenate([[0], np.cumsum([len(s["dense"]) for s in samples])])

    def __call__(self, sess, data, batch: int, seconds: float) -> float:
        import torch

        count = len(self.offsets) - 1
        with torch.inference_mode():
            self.model(self.dense[:100], self.sparse[:100])  # warm-up
            done, first, start = 0, 0, time.perf_counter()
            while time.perf_counter() - start < seconds or done < count:
                last = min(first + batch, count)
                rows = slice(int(self.offsets[first]), int(self.offsets[last]))
                self.model(self.dense[rows], self.sparse[rows])
                done += last - first
                first = 0 if last == count else last
        return done / (time.perf_counter() - start)


class RawGptj:
    """A bare transformers loop (GPT-J): `generate` over batches of consecutive prompts."""

    def __init__(self, model: Path, prompts: list[np.ndarray]) -> None:
        from fleet.harness.tasks import cnndm
        from fleet.harness.tasks.gptj_generate import Generator, load_gptj

        self.generate = Generator(load_gptj(model).eval().generate, cnndm.load_tokenizer(model).eos_token_id)
        self.prompts = prompts
        self.new_tokens: list[int] = []

    def _generate(self, prompts: list[np.ndarray]) -> list[int]:
        """New tokens per prompt of one left-padded `generate` call (the harness's own wrapper)."""
        return [len(ids) for ids in self.generate(prompts)]

    def __call__(self, sess, data, batch: int, seconds: float) -> float:
        import torch

        count = len(self.prompts)
        with torch.inference_mode():
            if not self.new_tokens:  # warm-up, and each article's new tokens (batch 1, as the rules)
                self.new_tokens = [self._generate([p])[0] for p in self.prompts]
            done, first, start = 0, 0, time.perf_counter()
            while time.perf_counter() - start < seconds or done < count:
                # The prompts in turn, round and round: a batch may be larger than the set, as
                # the harness's Offline batches are (LoadGen issues every sample many times).
                self._generate([self.prompts[(first + k) % count] for k in range(batch)])
                done += batch
                first = (first + batch) % count
        return done / (time.perf_counter() - start)


class TimedBackend:
    """The harness's backend, with the time spent inside its run() and the span of its calls."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.inside_s = 0.0
        self.first = self.last = None

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def run(self, feed, n):
        t0 = time.perf_counter()
        out = self.inner.run(feed, n)
        self.last = time.perf_counter()
        self.first = t0 if self.first is None else self.first
        self.inside_s += self.last - t0
        return out

    def outside_share(self) -> float:
        span = (self.last or 0.0) - (self.first or 0.0)
        return 1 - self.inside_s / span if span > 0 else float("nan")


def bench_task(name: str, tmp: Path, seconds: float, rounds: int) -> dict:
    # In a child process: synthesis runs PyTorch (RNN-T's teacher), whose OpenMP pool would
    # otherwise stay in this process's main thread beside the backend's.
    # GPT-J's `small` set: prompts of similar length. In `full`, one 1919-token prompt pads every
    # batch it lands in to its length (a batch of 4 with it takes twice one without), so the two
    # sides would measure how their orders group it rather than the harness.
    variant = "small" if name.startswith("gptj") else "full"
    subprocess.run([sys.executable, "-m", "fleet.harness", "synth", "--task", name, "--out",
                    str(tmp / name / "assets"), "--variant", variant], check=True, capture_output=True)
    marker = json.loads((tmp / name / "assets" / MARKER).read_text())
    model, dataset = assets_of(marker, tmp / name / "assets")
    task = get_task(name)
    task.model = model  # as the harness sets it: GPT-J's tokenizer is in the checkpoint directory
    task.open(dataset, tmp / name / "cache" / "raw")
    samples = [task.load_sample(i) for i in range(task.total_sample_count)]
    sess = raw_session(model) if "onnxruntime" in task.model_backends else None
    raw_offline_of = raw_offline
    spec = RunSpec(task=name, scenarios=["Offline"], modes=["performance"], model=str(model),
                   dataset=str(dataset))
    # Smoke rules with --seconds long runs, calibrating as long as the submission profile does.
    profile = replace(rules.PROFILES["smoke"], name="bench", min_duration_ms=int(seconds * 1000),
                      offline_qps_margin=1.25,
                      calibration_s=rules.PROFILES["submission"].calibration_s)
    timed: list[TimedBackend] = []

    def wrap(backend, ctx):  # windowed tasks only: the others keep their bare backend
        timed.append(TimedBackend(backend))
        return timed[-1]

    harness = raw_loop = None
    if sess is None:  # PyTorch: RNN-T one utterance at a time, DLRM-v2 in batches of samples
        # The raw loop runs on the thread that owns PyTorch's OpenMP pool in this process (the
        # backend's), as it would in a script of its own: a second pool would throttle both.
        harness = Harness(spec, tmp / name / "out", cache_root=tmp / name / "cache", profile=profile,
                          echo=lambda line: None)
        data = {}
        if name == "rnnt":
            raw_loop = harness.backend.pinned(RawRnnt)(model, [s["waveform"] for s in samples])
            raw_offline_of = harness.backend.pinned(raw_loop)
            sweep = {1: raw_offline_of(sess, data, 1, 1.0)}
        elif name.startswith("gptj"):
            raw_loop = harness.backend.pinned(RawGptj)(model, [s["input_ids"] for s in samples])
            raw_offline_of = harness.backend.pinned(raw_loop)
            sweep = {b: raw_offline_of(sess, data, b, 1.0) for b in RAW_BATCHES}
        else:
            raw_offline_of = harness.backend.pinned(harness.backend.pinned(RawDlrm)(model, samples))
            sweep = {b: raw_offline_of(sess, data, b, 1.0) for b in RAW_BATCHES}
    elif task.ragged_samples:  # whole cases, windowed: no batch axis
        data = {}
        raw_offline_of = windows = RawWindows(sess, [s["image"] for s in samples])
        sweep = {1: windows(sess, data, 1, 1.0)}
    else:
        data = {k: np.ascontiguousarray(np.stack([s[k] for s in samples])) for k in samples[0]}
        batches = [b for b in RAW_BATCHES if task.max_batch_size is None or b <= task.max_batch_size]
        sweep = {b: raw_offline(sess, data, b, 1.0) for b in batches}
    best = max(sweep, key=lambda b: sweep[b])
    harness = harness or Harness(spec, tmp / name / "out", cache_root=tmp / name / "cache", profile=profile,
                                 wrap_backend=wrap if isinstance(raw_offline_of, RawWindows) else None,
                                 echo=lambda line: None)
    ratios, rows = [], []
    for _ in range(rounds):
        before = raw_offline_of(sess, data, best, seconds)
        run = harness.run_one("Offline", "performance")
        after = raw_offline_of(sess, data, best, seconds)
        raw = (before + after) / 2
        ratios.append(run["result"] / raw)
        rows.append((raw, run["result"], run["result_validity"], run.get("batch_size"), run.get("threads")))
    harness.backend.close()
    result = {"task": name, "best": best, "sweep": sweep, "rows": rows, "ratio": statistics.median(ratios)}
    if isinstance(raw_offline_of, RawWindows):
        result["outside_ort"] = 1 - raw_offline_of.ort_s / raw_offline_of.total_s
        result["harness_outside_ort"] = statistics.median(t.outside_share() for t in timed)
    if isinstance(raw_loop, RawGptj):
        result["tokens_per_sample"] = float(np.mean(raw_loop.new_tokens))
    if isinstance(raw_loop, RawRnnt):
        total = sum(raw_loop.phases.values())
        result["phases"] = {k: v / total for k, v in raw_loop.phases.items()}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="retinanet,bert-99,3d-unet-99,rnnt,dlrm-v2-99,gptj-99")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        results = [bench_task(t, Path(tmp), args.seconds, args.rounds) for t in args.tasks.split(",")]
    for res in results:
        sweep = ", ".join(f"{b}: {v:.1f}" for b, v in res["sweep"].items())
        print(f"\n{res['task']}: raw samples/s by batch size {sweep}; raw best batch {res['best']}")
        print(f"{'round':>5} | {'raw S/s':>9} {'harness S/s':>11} {'valid':>7} {'ratio':>6} | "
              "harness batch, threads")
        for i, (raw, got, valid, batch, threads) in enumerate(res["rows"], 1):
            print(f"{i:>5} | {raw:>9.2f} {got:>11.2f} {valid:>7} {got / raw:>6.3f} | {batch}, {threads}")
        print(f"{res['task']} Offline harness / raw at best batch: {res['ratio']:.3f} (target >= 0.95)")
        if "tokens_per_sample" in res:
            per = res["tokens_per_sample"]
            raw = statistics.median(r[0] for r in res["rows"])
            got = statistics.median(r[1] for r in res["rows"])
            print(f"{res['task']} new tokens/s (x {per:.1f} per article): raw {raw * per:.1f}, harness "
                  f"{got * per:.1f}")
        if "outside_ort" in res:
            print(f"{res['task']} harness: {res['harness_outside_ort']:.1%} of the time between its first "
                  "and last window outside onnxruntime (window work, LoadGen, responses)")
            print(f"{res['task']} raw loop: {res['outside_ort']:.1%} of its time outside onnxruntime "
                  "(window copies, Gaussian weighting, accumulation, argmax)")
        if "phases" in res:
            print(f"{res['task']} raw loop time by phase: "
                  + ", ".join(f"{k} {v:.1%}" for k, v in res["phases"].items()))
    print(f"\n(took {time.perf_counter() - start:.0f} s; 1-min load average {load_before:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at end on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
