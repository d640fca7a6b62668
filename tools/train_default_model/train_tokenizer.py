"""Train the default model's byte-level BPE vocabulary with HF `tokenizers`.

GPT-2 style: the ByteLevel pre-tokenizer with GPT-2's split regex, every byte in
the initial alphabet (so any text tokenizes, nothing maps to <unk>), no prefix
space. Exported by `bitnet convert` as a GGUF tokenizer with
`tokenizer.ggml.model = "gpt2"` and `tokenizer.ggml.pre = "gpt-2"`.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
SPECIAL_TOKENS = [BOS, EOS]


def train(text: str, vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,  # ids 0 and 1
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Paragraph by paragraph: the trainer counts words per item.
    tok.train_from_iterator(text.split("\n\n"), trainer=trainer)
    return tok


def save(tok: Tokenizer, out_dir: Path, max_length: int) -> None:
    """tokenizer.json plus the tokenizer_config.json a HF checkpoint carries."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "add_bos_token": True,
        "model_max_length": max_length,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
