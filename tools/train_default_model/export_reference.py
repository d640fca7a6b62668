"""Record what the trained PyTorch model does, for the engine's tests to match.

    python tools/train_default_model/export_reference.py CHECKPOINT_DIR OUT.json

Writes, from the PyTorch model (the same quantized arithmetic as training):
- greedy continuations of a few prompts (ids), with the margin between the best
  and second-best logit at every step, so a test can tell a real mismatch from
  a near tie that float rounding may flip;
- the logits after each prompt (OUT with .npy for .json: float32, one row per
  prompt);
- held-out perplexity by llama.cpp's method at n_ctx, on held_out.txt, and on
  a sample of it that the tests can afford (every SAMPLE_EVERY-th chunk, so
  that every source is in it), written beside OUT as held_out_sample.txt.
The engine's tests (tests/test_default_model.py) compare against this file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

import evaluate
import train_tokenizer
from model import BitNetForCausalLM, Config

PROMPTS = ["Once upon a time", "In the beginning", "The President said that", "It is a truth universally"]
SAMPLE_EVERY = 7  # held-out chunks: 1.4 MB held out -> a 0.2 MB sample


def held_out_sample(held: str) -> str:
    """Every SAMPLE_EVERY-th held-out chunk (corpus.load joins chunks with a
    blank line), from the first."""
    chunks = held.rstrip("\n").split("\n\n")
    return "\n\n".join(chunks[::SAMPLE_EVERY]) + "\n"


def load(ckpt: Path) -> tuple[BitNetForCausalLM, Tokenizer]:
    from safetensors.torch import load_file

    hf = json.loads((ckpt / "config.json").read_text())
    fields = Config.__dataclass_fields__
    cfg = Config(**{k: v for k, v in hf.items() if k in fields})
    model = BitNetForCausalLM(cfg)
    model.load_state_dict(load_file(str(ckpt / "model.safetensors")), strict=True)
    model.eval()
    return model, Tokenizer.from_file(str(ckpt / "tokenizer.json"))


@torch.no_grad()
def greedy(model: BitNetForCausalLM, ids: list[int], n: int) -> tuple[list[int], list[float]]:
    out, margins = [], []
    seq = list(ids)
    for _ in range(n):
        logits = model(torch.tensor([seq]))[0, -1].double()
        top2 = torch.topk(logits, 2)
        out.append(int(top2.indices[0]))
        margins.append(round(float(top2.values[0] - top2.values[1]), 4))
        seq.append(out[-1])
    return out, margins


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--n-ctx", type=int, default=256)
    p.add_argument("--tokens", type=int, default=32)
    args = p.parse_args()
    torch.set_num_threads(2)
    model, tok = load(args.checkpoint)
    bos = tok.token_to_id(train_tokenizer.BOS)
    cases, last_logits = [], []
    for prompt in PROMPTS:
        ids = [bos] + tok.encode(prompt).ids
        with torch.no_grad():
            last_logits.append(model(torch.tensor([ids]))[0, -1].numpy().astype(np.float32))
        gen, margins = greedy(model, ids, args.tokens)
        cases.append({"prompt": prompt, "prompt_ids": ids, "greedy_ids": gen, "margins": margins,
                      "text": tok.decode(gen)})
        print(f"{prompt!r} -> {tok.decode(gen)!r}")
    held = (args.checkpoint / "held_out.txt").read_text(encoding="utf-8")
    sample = held_out_sample(held)
    (args.out.parent / "held_out_sample.txt").write_text(sample, encoding="utf-8")
    ppl = {}
    for name, text in (("held_out", held), ("held_out_sample", sample)):
        ids = np.asarray([bos] + tok.encode(text).ids, dtype=np.int64)
        ppl[name] = (int(len(ids)), evaluate.perplexity(model, ids, n_ctx=args.n_ctx, device=torch.device("cpu")))
        print(f"{name} perplexity (n_ctx {args.n_ctx}, {len(text)} chars, {len(ids)} tokens): {ppl[name][1]:.4f}")
    np.save(args.out.with_suffix(".npy"), np.stack(last_logits))
    args.out.write_text(json.dumps({"source": "tools/train_default_model/export_reference.py",
                                    "n_ctx": args.n_ctx,
                                    "held_out_tokens": ppl["held_out"][0], "held_out_ppl": ppl["held_out"][1],
                                    "sample_tokens": ppl["held_out_sample"][0],
                                    "sample_ppl": ppl["held_out_sample"][1], "cases": cases}, indent=1) + "\n")


if __name__ == "__main__":
    main()
