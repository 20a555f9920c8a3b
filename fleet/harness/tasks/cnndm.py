"""CNN/DailyMail as the v3.1 GPT-J reference reads it: `cnn_eval.json`, the Alpaca prompt, the tokenizer.

The dataset is one JSON list of `{"instruction", "input", "output"}` items (the reference's
download_cnndm.py writes the 13,368 validation articles so); QSL index i is item i. Each
prompt is the Alpaca "prompt_input" template filled with the item's instruction and article,
and encoded alone, untimed, truncated to 1919 tokens (2048 positions less the 128 new tokens
and one), as dataset.py encodes it. The reference summary is the item's `output`.

The tokenizer is the one in the model's checkpoint directory (`vocab.json` + `merges.txt` or
`tokenizer.json`, with `tokenizer_config.json`), loaded with `local_files_only`: a run never
reaches a model hub. Its vocabulary must fit the model's embedding (`config.json`'s
`vocab_size`), or every id past it would index out of the table mid-run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.harness.errors import HarnessError
from fleet.harness.jsonfile import read_json

DATASET_FILE = "cnn_eval.json"
FIELDS = ("instruction", "input", "output")
PROMPT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
MAX_PROMPT_TOKENS = 1919  # 2048 - 128 - 1
MODEL_MAX_LENGTH = 2048


@dataclass(frozen=True)
class Article:
    instruction: str
    input: str
    output: str

    @property
    def prompt(self) -> str:
        return PROMPT.format(instruction=self.instruction, input=self.input)


def dataset_path(dataset_dir: Path) -> Path:
    return Path(dataset_dir) / DATASET_FILE


def read_articles(dataset_dir: Path) -> list[Article]:
    """Every item of cnn_eval.json; one HarnessError line naming the file and item otherwise."""
    path = dataset_path(dataset_dir)
    items = read_json(path, HarnessError, "dataset {dir}: {path.name} does not exist (the reference's "
                      "download_cnndm.py writes it)", "dataset {path}: not JSON ({exc})", dir=dataset_dir)
    if not isinstance(items, list) or not items:
        raise HarnessError(f"dataset {path}: expected a non-empty JSON list of "
                           f"{{{', '.join(FIELDS)}}} items")
    articles = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise HarnessError(f"dataset {path}: item {i} is not an object with {', '.join(FIELDS)}")
        missing = [f for f in FIELDS if not isinstance(item.get(f), str)]
        if missing:
            raise HarnessError(f"dataset {path}: item {i} has no {' or '.join(missing)} (a string)")
        if not item["input"].strip():
            raise HarnessError(f"dataset {path}: item {i} has an empty article (input)")
        articles.append(Article(item["instruction"], item["input"], item["output"]))
    return articles


def load_tokenizer(model_dir: Path) -> Any:
    """The checkpoint's own tokenizer, checked against the model's vocabulary."""
    tokenizer = load_tokenizer_files(model_dir)
    check_vocabulary(model_dir, len(tokenizer))
    return tokenizer


def load_tokenizer_files(model_dir: Path) -> Any:
    """The tokenizer files of `model_dir`, left padding, pad = eos, from local files only."""
    from transformers import AutoTokenizer

    model_dir = Path(model_dir)
    if not ((model_dir / "tokenizer.json").is_file()
            or all((model_dir / name).is_file() for name in ("vocab.json", "merges.txt"))):
        raise HarnessError(f"model {model_dir}: no usable tokenizer: it needs vocab.json and merges.txt, "
                           f"or tokenizer.json (GPT-J's checkpoint directory has them)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, padding_side="left",
                                                  model_max_length=MODEL_MAX_LENGTH)
    except (OSError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HarnessError(f"model {model_dir}: no usable tokenizer (vocab.json and merges.txt, or "
                           f"tokenizer.json, with tokenizer_config.json): {first}") from None
    if tokenizer.eos_token_id is None:
        raise HarnessError(f"model {model_dir}: the tokenizer has no eos token (GPT-J's is <|endoftext|>)")
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def checkpoint_config(model_dir: Path) -> dict[str, Any]:
    """The checkpoint directory's config.json; HarnessError when it is missing or not a JSON object."""
    path = Path(model_dir) / "config.json"
    config = read_json(path, HarnessError, "model {dir}: config.json does not exist (a save_pretrained "
                       "checkpoint directory has one)", "model {path}: not JSON ({exc})", dir=model_dir)
    if not isinstance(config, dict):
        raise HarnessError(f"model {path}: not a JSON object")
    return config


def model_vocab_size(model_dir: Path) -> int:
    try:
        return int(checkpoint_config(model_dir)["vocab_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise HarnessError(f"model {Path(model_dir) / 'config.json'}: no vocab_size ({exc})") from None


def check_vocabulary(model_dir: Path, tokens: int) -> None:
    """A tokenizer with more ids than the model's embedding rows is not this model's."""
    rows = model_vocab_size(model_dir)
    if tokens > rows:
        raise HarnessError(f"model {model_dir}: the tokenizer has {tokens} tokens but config.json's "
                           f"vocab_size is {rows}: the tokenizer files are not this model's")


def encode_prompts(tokenizer: Any, articles: list[Article], dataset_dir: Path) -> list[list[int]]:
    """Each prompt's token ids alone, truncated to 1919 (dataset.py's encode_samples)."""
    ids = tokenizer([a.prompt for a in articles], truncation=True, max_length=MAX_PROMPT_TOKENS,
                    padding=False)["input_ids"]
    for i, row in enumerate(ids):
        if not row:
            raise HarnessError(f"dataset {dataset_path(dataset_dir)}: item {i} encodes to no tokens")
    return [list(row) for row in ids]
