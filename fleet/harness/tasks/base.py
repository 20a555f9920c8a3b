"""The Task interface: everything the harness needs to know about one benchmark.

A task is the only place that knows a dataset format, a preprocessing, a model's inputs and
outputs, a response payload and an accuracy script. The rest of the harness (QSL, SUTs,
LoadGen settings, compliance, manifest) is task-agnostic and talks to tasks through this
class. A new task is one module in `fleet/harness/tasks/` registered in `tasks/__init__.py`.

Lifecycle, as the harness drives it for one run:

1. `task = TaskClass()`; the class attributes describe it (`name`, `rules_model`,
   `max_batch_size`, `inputs`, `outputs`, `response_dtype`); the harness sets `task.model`
   (the model file or directory, or None). The backend checks the model
   against `task.inputs_for(its input names)` (the inputs, in the model's naming convention
   where a task accepts several) and `outputs`.
2. `task.open(dataset_dir, cache_dir)` reads the dataset's index, checks that every file it
   names exists (a missing or unreadable file is a HarnessError naming it, never a silent
   index shift: QSL index i must stay dataset item i), and preprocesses everything into a
   cache so that the timed part never decodes or resizes. `task.total_sample_count` is then
   known. `task.dataset_files(dataset_dir)` lists the files the dataset digest covers.
3. The QSL calls `task.load_sample(i)` for each sample LoadGen asks to hold in memory; it
   returns `{input name: array}` with the per-sample shape of `sample_inputs` (no batch
   axis; by default the model's `inputs`). The QSL stacks them into one contiguous array per
   input, so the SUT builds a batch's feed with one fancy-indexing gather (`task.gather`).
   A sample input with a `None` dimension is ragged (cases of different sizes): the QSL then
   keeps one array per sample and the feed holds a list of the batch's arrays.
4. `task.infer(backend, feed, n)` runs the batch. By default that is one `backend.run(feed,
   n)`, which returns `{output name: array with a batch axis}` for the names in `outputs`: the
   fast path. A task whose inference takes many backend calls per sample (3D-UNet's sliding
   window, RNN-T's decode loop, GPT-J's generation) overrides `infer` and drives the backend
   itself, with feeds of the model's `inputs` cut from the sample; whatever it returns is
   what its postprocess reads. It runs in the harness's one inference thread, inside LoadGen's
   timing.
5. `task.postprocess(outputs, n, indices=...)` turns a batch's outputs into LoadGen response
   payloads, one per sample, in batch order. `indices` are the QSL sample indices of the
   batch rows: a payload that names its sample (RetinaNet's records) takes it from there,
   since pixels cannot tell two byte-identical images apart. The payloads are either one
   ndarray whose row i is sample i's payload (fixed size, the fast path: one buffer per
   batch), or a list of n ndarrays/bytes whose sizes may differ per sample (e.g. detection
   lists). LoadGen logs these bytes, hex-encoded, in mlperf_log_accuracy.json.
6. `task.accuracy(accuracy_log, dataset_dir)` runs the task's accuracy script over a
   mlperf_log_accuracy.json and returns the text that becomes accuracy.txt (the script's
   stdout, without the hash line) and the first metric as a float.

`response_dtype` is how TEST01 decodes payloads when it compares the audit run's responses
with the accuracy run's (the official `--dtype` of verify_accuracy.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fleet.harness.errors import HarnessError


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, numpy dtype name, per-sample shape (no batch axis)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]  # None: a dimension that differs from sample to sample

    @property
    def ragged(self) -> bool:
        return None in self.shape


@dataclass(frozen=True)
class MemoryNeed:
    """What holding a model and running one sample takes (`bytes`, said in `why`), and what each
    more sample of a batch adds (`per_sample`: an LLM's key/value cache)."""

    bytes: int
    why: str
    per_sample: int = 0

    def largest_batch(self, have: int) -> int:
        """The largest batch `have` bytes hold (at least 1: a batch of one is refused elsewhere)."""
        if not self.per_sample or have <= self.bytes:
            return 1 if self.per_sample else 1 << 30
        return 1 + (have - self.bytes) // self.per_sample


@dataclass(frozen=True)
class AccuracyResult:
    """What an accuracy script printed (accuracy.txt, no hash line) and its first metric."""

    text: str
    value: float


@contextmanager
def scoring(what: str, accuracy_log: Path) -> Iterator[None]:
    """An accuracy script's failure on a log (unreadable, wrong shape) as one HarnessError line."""
    try:
        yield
    except (OSError, ValueError, KeyError) as exc:
        raise HarnessError(f"{what} accuracy on {accuracy_log}: {exc}") from None


Payloads = np.ndarray | Sequence[Any]
Indices = np.ndarray | Sequence[int]  # QSL sample indices of a batch's rows, in batch order


class Task(ABC):
    """One benchmark as the harness sees it; see the module docstring for the lifecycle."""

    name: ClassVar[str]  # fleet task name, e.g. "resnet50"
    rules_model: ClassVar[str]  # submission model name in rules.MODELS, e.g. "resnet"
    max_batch_size: ClassVar[int | None] = None  # None: any; 1 for fixed-batch models
    inputs: tuple[TensorSpec, ...]  # the class's default; inputs_for may pick another per instance
    outputs: ClassVar[tuple[TensorSpec, ...]]  # the outputs postprocess needs
    response_dtype: ClassVar[str] = "float32"
    # Backends with a model for this task (the null backend needs none and runs every task).
    model_backends: ClassVar[tuple[str, ...]] = ("onnxruntime",)
    # The model the harness runs, set before open(): a file, or a directory (a Hugging Face
    # `save_pretrained` folder, a sharded checkpoint) hashed and staged as one artifact. A task
    # that needs files beside the weights (GPT-J's tokenizer) reads them from here, in open()
    # and in accuracy(); None with the null backend.
    model: Path | None = None
    # The pyproject extras a node needs to run this task, beside `node` and its backend's
    # (fleet/wheelhouse.py extras_for): hosts that run no such task stay free of them.
    node_extras: ClassVar[tuple[str, ...]] = ()

    def torch_model(self, path: Path) -> Any:
        """The network the pytorch backend runs, built from the checkpoint at `path`.

        A task whose reference model is a PyTorch checkpoint lists "pytorch" in
        `model_backends` and builds its architecture here (a checkpoint holds weights, not
        code); a missing key or a wrong shape is a HarnessError naming the file.
        """
        raise HarnessError(f"{self.name} has no PyTorch model")

    def memory_need(self, model: Path, precision: str) -> MemoryNeed | None:
        """What a backend needs to hold `model` at `precision` and run it; None where the task
        does not say (models that fit any node).

        The controller compares it with each node's memory once provisioning has gathered the
        facts, before anything is deployed, and the pytorch backend with the device's memory
        before it loads: a model that cannot fit is refused in one line, not an hour into a run.
        The backend also caps the batch sizes the harness tries at what the memory holds.
        """
        return None

    @abstractmethod
    def open(self, dataset_dir: Path, cache_dir: Path) -> None:
        """Index the dataset, check every file, fill the preprocessed cache."""

    @property
    @abstractmethod
    def total_sample_count(self) -> int:
        """Samples in the dataset (LoadGen's QSL total count); valid after open()."""

    @abstractmethod
    def dataset_files(self, dataset_dir: Path) -> list[Path]:
        """Every file the dataset digest covers (index files and samples), in a stable order."""

    def inputs_for(self, model_input_names: Collection[str]) -> tuple[TensorSpec, ...]:
        """The inputs to feed a model whose graph inputs have these names, which become `inputs`.

        Some models come as exports that name the same inputs differently (BERT fp32 and
        fake-quant int8); a task that accepts several conventions picks the model's here, and
        its QSL arrays, load_sample and feeds use those names from then on. It raises
        ValueError, one line naming the expected names, for a model that matches none. By
        default a task has one convention and the backend's model check names what is missing.
        """
        return self.inputs

    @property
    def sample_inputs(self) -> tuple[TensorSpec, ...]:
        """What the QSL holds per sample; by default one model feed, the model's `inputs`.

        A task whose sample is not one model feed (a CT volume cut into windows, an utterance
        run through a decode loop, a prompt that generates) names its own here and overrides
        `infer`. A None dimension is ragged: such samples are kept one array each.
        """
        return self.inputs

    @property
    def ragged_samples(self) -> bool:
        """Whether samples differ in size (some sample input has a None dimension)."""
        return any(spec.ragged for spec in self.sample_inputs)

    @abstractmethod
    def load_sample(self, index: int) -> dict[str, np.ndarray]:
        """One preprocessed sample, `{input name: array of the input's per-sample shape}`."""

    def gather(self, store: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
        """A batch's backend feed from the QSL's contiguous arrays (rows: positions in them).

        Consecutive rows are a zero-copy view; others are gathered into a buffer reused from
        call to call (no fresh allocation and page faults per batch). The feed is therefore
        only valid until the next gather: backends consume it within run(). Ragged inputs
        never reach here: the QSL hands their per-sample arrays over as lists.
        """
        n = len(rows)
        if n and int(rows[-1]) - int(rows[0]) == n - 1 and (n == 1 or bool(np.all(np.diff(rows) == 1))):
            first = int(rows[0])
            return {name: array[first : first + n] for name, array in store.items()}
        buffers: dict[str, np.ndarray] = self.__dict__.setdefault("_gather_buffers", {})
        feed = {}
        for name, array in store.items():
            buf = buffers.get(name)
            if buf is None or len(buf) < n or buf.dtype != array.dtype or buf.shape[1:] != array.shape[1:]:
                buf = buffers[name] = np.empty((n, *array.shape[1:]), dtype=array.dtype)
            np.take(array, rows, axis=0, out=buf[:n])
            feed[name] = buf[:n]
        return feed

    def infer(self, backend: Any, feed: dict[str, Any], n: int) -> dict[str, Any]:
        """A batch's outputs for postprocess: one backend call, unless the task drives several.

        Override for a multi-step inference (see the module docstring, step 4): call
        `backend.run(model feed, k)` as often as the task needs. The harness calls the backend
        directly, skipping this, for a backend without a feed (null), whose outputs come from
        `null_outputs`, so those must have the shapes this method returns.
        """
        return backend.run(feed, n)

    @abstractmethod
    def postprocess(self, outputs: dict[str, np.ndarray], n: int, *, indices: Indices) -> Payloads:
        """Payloads for the n samples of a batch, in batch order; `indices[i]` is row i's QSL index."""

    @abstractmethod
    def accuracy(self, accuracy_log: Path, dataset_dir: Path) -> AccuracyResult:
        """Run the accuracy script over an accuracy log."""

    @property
    def infer_outputs(self) -> tuple[TensorSpec, ...]:
        """What `infer` returns, per sample; by default the model's `outputs`.

        A task whose `infer` returns something else than the model's outputs (3D-UNet's
        labels per case, stitched from many windows) names it here. A None dimension is
        ragged: `infer` returns a list of the batch's arrays for that name.
        """
        return self.outputs

    def null_outputs(self, n: int) -> dict[str, Any]:
        """Fixed outputs of `infer_outputs`' shapes and dtypes for n samples (the null backend):
        zeros, and for a ragged output n empty arrays (a response of no bytes)."""
        out: dict[str, Any] = {}
        for spec in self.infer_outputs:
            if spec.ragged:
                out[spec.name] = [np.zeros(tuple(d or 0 for d in spec.shape), dtype=spec.dtype)
                                  for _ in range(n)]
            else:
                out[spec.name] = np.zeros((n, *spec.shape), dtype=spec.dtype)
        return out
