"""Run the official v3.1 `language/gpt-j/evaluation.py` offline, with the shims fleet uses and nothing else.

    python gptj_official.py EVALUATION_PY TOKENIZER_DIR JSON LOG [LOG ...]

runs `evaluation.py --mlperf-accuracy-file LOG --dataset-file JSON` for each LOG in turn, in
one process (transformers and torch are imported once).

Three things in the script reach the network, each replaced by what it computes:
- `evaluate.load("rouge")`: Hugging Face's rouge metric is rouge_score's RougeScorer over
  rouge1, rouge2, rougeL and rougeLsum, `score(reference, prediction)` per pair, F-measures per
  sample with use_aggregator=False; the shim computes exactly that;
- `nltk.download("punkt")` / `nltk.sent_tokenize`: no download; the split is fleet's offline
  Punkt (fleet.harness.accuracy.cnndm.split_sentences);
- `AutoTokenizer.from_pretrained("EleutherAI/gpt-j-6B", ...)`: the same call on the local
  checkpoint directory, with local_files_only.
`datasets`, which dataset.py imports but evaluation never uses, is an empty module.
"""

from __future__ import annotations

import runpy
import sys
import types
from pathlib import Path


class _Rouge:
    TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")

    def compute(self, predictions, references, use_stemmer=False, use_aggregator=True):
        from rouge_score import rouge_scorer

        assert not use_aggregator, "evaluation.py asks for per-sample scores"
        scorer = rouge_scorer.RougeScorer(list(self.TYPES), use_stemmer=use_stemmer)
        scores = [scorer.score(ref, pred) for ref, pred in zip(references, predictions, strict=True)]
        return {key: [s[key].fmeasure for s in scores] for key in self.TYPES}


def install_shims(tokenizer_dir: str) -> None:
    import nltk
    import transformers

    from fleet.harness.accuracy.cnndm import split_sentences

    evaluate = types.ModuleType("evaluate")
    evaluate.load = lambda name, *args, **kwargs: _Rouge()
    sys.modules["evaluate"] = evaluate
    datasets = types.ModuleType("datasets")
    datasets.load_dataset = datasets.load_from_disk = None
    sys.modules["datasets"] = datasets
    nltk.download = lambda *args, **kwargs: True
    nltk.sent_tokenize = split_sentences
    hub = transformers.AutoTokenizer.from_pretrained

    def local(name, *args, **kwargs):
        return hub(tokenizer_dir, *args, local_files_only=True, **kwargs)

    transformers.AutoTokenizer.from_pretrained = local


def main() -> None:
    script, tokenizer_dir, dataset, *logs = sys.argv[1:]
    install_shims(tokenizer_dir)
    sys.path.insert(0, str(Path(script).parent))
    for log in logs:
        sys.argv = [script, "--mlperf-accuracy-file", log, "--dataset-file", dataset]
        runpy.run_path(script, run_name="__main__")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
