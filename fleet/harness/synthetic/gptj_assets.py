"""Synthetic GPT-J checkpoint + CNN/DailyMail set, made together (teacher-summarised).

The model is a two-layer GPT-J (rotary attention, a 64-wide residual stream) saved with
`save_pretrained` in `checkpoint-final/`, beside a byte-level BPE tokenizer trained here with
`tokenizers` on the set's own text (vocab.json + merges.txt and tokenizer.json, eos = pad =
`<|endoftext|>`, as GPT-J's). The articles are sentences of made-up words under the reference's
instruction; in the `full` variant the last one is long enough that its prompt is cut at 1919
tokens, as long CNN articles are (`small` keeps every prompt short, for quick runs: a batch
is padded to its longest prompt, and beam search runs each prompt four times). Each reference
summary (`output`) is the teacher's own beam-search generation from the article's prompt
(batch 1, the rules' settings), decoded: a correct harness scores ROUGE 100, and one that
shuffles the articles, decodes greedily or builds another prompt scores clearly less.

A random network would repeat one phrase whatever its input, so the teacher's weights are drawn
wide (attention that picks out tokens of the article), its head is limited to whole-word
tokens, and eos gets a bias that ends summaries at different lengths. The set is refused
(another --seed) unless the summaries differ: in text, and in length.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.synthetic import asset_marker, check_variant, sample_count, seed_must_label, write_atomic
from fleet.harness.tasks import cnndm

MODEL_DIR = "checkpoint-final"
DATASET_DIR = "cnndm"
DEFAULT_SAMPLES = 8
MIN_SAMPLES = 4  # a shuffled order must be scorable
INSTRUCTION = "Summarize the following news article:"
EOS = "<|endoftext|>"
VOCAB = 1024
SYLLABLES = ("ka", "lo", "mi", "ra", "te", "su", "no", "vi", "da", "pe", "zo", "gu", "he", "ri", "ma", "to")
NETWORK = {"n_layer": 2, "n_embd": 64, "n_head": 4, "rotary_dim": 16}  # both variants
VARIANTS = ("small", "full")  # full: one prompt past the 1919-token limit
INIT_STD = 0.3
EOS_BIAS = 6.0
BLOCKED_BIAS = -30.0
# At least this share of the summaries must differ from every other, and two lengths appear.
MIN_DISTINCT = 0.75


def _words(rng: np.random.Generator) -> list[str]:
    return sorted({"".join(rng.choice(SYLLABLES, size=int(rng.integers(1, 4)))) for _ in range(600)})


def _sentence(rng: np.random.Generator, words: list[str]) -> str:
    return " ".join(rng.choice(words, size=int(rng.integers(5, 14)))).capitalize() + "."


def make_articles(samples: int, seed: int, long_last: bool) -> list[str]:
    """`samples` articles of 3 to 9 sentences; with `long_last`, the last one far past the
    1919-token prompt limit."""
    rng = np.random.default_rng([seed, 7])
    words = _words(rng)
    articles = [" ".join(_sentence(rng, words) for _ in range(int(rng.integers(3, 10))))
                for _ in range(samples)]
    if long_last:
        articles[-1] = " ".join(_sentence(rng, words) for _ in range(400))
    return articles


def train_tokenizer(texts: list[str], out: Path) -> Any:
    """A byte-level BPE tokenizer over `texts`, saved in both Hugging Face formats; the loaded one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    out.mkdir(parents=True, exist_ok=True)
    bpe.model.save(str(out))  # vocab.json, merges.txt (GPT-J's checkpoint has these)
    GPT2TokenizerFast(tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, unk_token=EOS,
                      pad_token=EOS).save_pretrained(out)
    return cnndm.load_tokenizer_files(out)


def build_teacher(tokenizer: Any, seed: int) -> Any:
    """The tiny GPT-J: wide random weights, a head that says whole words, a bias on eos."""
    import torch
    from transformers import GPTJConfig, GPTJForCausalLM

    eos = tokenizer.eos_token_id
    torch.manual_seed(seed)
    config = GPTJConfig(vocab_size=len(tokenizer), n_positions=cnndm.MODEL_MAX_LENGTH, bos_token_id=eos,
                        eos_token_id=eos, pad_token_id=eos, initializer_range=INIT_STD, **NETWORK)
    model = GPTJForCausalLM(config).eval()
    allowed = torch.zeros(len(tokenizer), dtype=torch.bool)
    for token, i in tokenizer.get_vocab().items():
        word = token.removeprefix("\u0120")  # byte-level BPE's leading-space mark
        allowed[i] = (word.isalpha() and len(word) >= 2) or token in ("\u0120", ".")
    with torch.no_grad():
        model.lm_head.bias[~allowed] = BLOCKED_BIAS
        model.lm_head.bias[eos] = EOS_BIAS
    return model


def summarise(model: Any, tokenizer: Any, prompts: list[list[int]]) -> list[np.ndarray]:
    """The teacher's beam-search ids for each prompt alone (the reference's batch 1)."""
    import torch

    from fleet.harness.tasks.gptj_generate import Generator

    generate = Generator(model.generate, tokenizer.eos_token_id)
    with torch.inference_mode():
        return [generate([np.asarray(p, dtype=np.int64)])[0] for p in prompts]


def check_diverse(summaries: list[str], lengths: list[int]) -> None:
    counts = Counter(summaries)
    distinct = sum(1 for s in summaries if counts[s] == 1)
    if distinct < MIN_DISTINCT * len(summaries):
        raise ValueError(f"only {distinct} of {len(summaries)} teacher summaries differ from all others")
    if len(set(lengths)) < 2:
        raise ValueError(f"every teacher summary is {lengths[0]} tokens long")


def make_gptj_assets(out: Path, samples: int | None, seed: int, variant: str,
                     task: str = "gptj-99") -> dict[str, Any]:
    import torch

    from fleet.harness.tasks.gptj import GPTJ

    check_variant(variant, VARIANTS)
    samples = sample_count(task, samples, DEFAULT_SAMPLES, MIN_SAMPLES, "a shuffled order must be scorable")
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    articles = make_articles(samples, seed, long_last=variant == "full")
    model_dir, dataset = out / MODEL_DIR, out / DATASET_DIR
    template = cnndm.PROMPT.format(instruction=INSTRUCTION, input="")
    tokenizer = train_tokenizer([template, *articles], model_dir)
    items = [cnndm.Article(INSTRUCTION, a, "") for a in articles]
    prompts = cnndm.encode_prompts(tokenizer, items, dataset)
    model = build_teacher(tokenizer, seed)
    ids = summarise(model, tokenizer, prompts)
    texts = tokenizer.batch_decode([i.tolist() for i in ids], skip_special_tokens=True)
    summaries = [s.strip() for s in texts]
    with seed_must_label(task, seed):
        check_diverse(summaries, [len(i) for i in ids])
    model.save_pretrained(model_dir)
    dataset.mkdir(parents=True, exist_ok=True)
    records = [{"instruction": INSTRUCTION, "input": a, "output": s}
               for a, s in zip(articles, summaries, strict=True)]
    write_atomic(cnndm.dataset_path(dataset), (json.dumps(records, indent=1) + "\n").encode("utf-8"))
    lengths = [len(i) for i in ids]
    return asset_marker(task, seed, variant, model_dir, dataset, GPTJ().dataset_files(dataset),
                        samples=samples, reference="teacher", summary_tokens=[min(lengths), max(lengths)],
                        prompt_tokens=[min(map(len, prompts)), max(map(len, prompts))])


def make_gptj_999_assets(out: Path, samples: int | None, seed: int, variant: str) -> dict[str, Any]:
    return make_gptj_assets(out, samples, seed, variant, task="gptj-99.9")


def needs_line(samples: int) -> str:
    """What a synthetic GPT-J set of `samples` articles costs before any run: the teacher's generation."""
    return (f"a synthetic GPT-J set of {samples:,} articles: the teacher model generates each reference "
            f"summary once (beam search, 30-128 tokens) on the node before the runs")
