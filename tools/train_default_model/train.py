"""Train the embedded default model from scratch (seeded, CPU or CUDA).

    python tools/train_default_model/train.py OUT_DIR [--steps N] [--threads N]

Writes a Hugging Face style checkpoint directory that `bitnet convert` reads:
config.json (BitNetForCausalLM), model.safetensors (float32 master weights),
tokenizer.json, tokenizer_config.json, plus train_log.json (settings, losses,
held-out perplexity, time, versions) and the held-out text (held_out.txt).
See README.md next to this file for the recorded run.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import corpus
import evaluate
import train_tokenizer
from model import BitNetForCausalLM, Config


def encode_paragraphs(tok, text: str) -> np.ndarray:
    """The training stream: BOS, then the chapter and its blank line, per chapter
    (generation starts after BOS, so BOS is seen where text begins)."""
    bos = tok.token_to_id(train_tokenizer.BOS)
    ids: list[int] = []
    for enc in tok.encode_batch([c + "\n\n" for c in text.split("\n\n")]):
        ids.append(bos)
        ids.extend(enc.ids)
    return np.asarray(ids, dtype=np.int64)


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--ffn", type=int, default=768)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dev = torch.device(args.device)
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    text = corpus.load()
    tok = train_tokenizer.train(text.train, args.vocab)
    train_tokenizer.save(tok, out, max_length=args.seq * 2)
    (out / "held_out.txt").write_text(text.held_out, encoding="utf-8")
    train_ids = encode_paragraphs(tok, text.train)
    # Held out exactly as the engine's perplexity tokenizes a text file: BOS, then the text.
    held_ids = np.asarray([tok.token_to_id(train_tokenizer.BOS)] + tok.encode(text.held_out).ids, dtype=np.int64)
    print(f"corpus: {len(train_ids)} training tokens, {len(held_ids)} held out; vocab {tok.get_vocab_size()}")

    cfg = Config(
        vocab_size=tok.get_vocab_size(),
        hidden_size=args.hidden,
        intermediate_size=args.ffn,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.seq * 2,
        bos_token_id=tok.token_to_id(train_tokenizer.BOS),
        eos_token_id=tok.token_to_id(train_tokenizer.EOS),
    )
    model = BitNetForCausalLM(cfg).to(dev)
    print(f"model: {model.n_params():,} parameters")
    decay = [p for n, p in model.named_parameters() if p.ndim == 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
    )

    log: list[dict] = []
    t0 = time.time()
    bar = tqdm(range(args.steps), desc="training", unit="step")
    for step in bar:
        starts = rng.integers(0, len(train_ids) - args.seq - 1, size=args.batch)
        batch = torch.from_numpy(np.stack([train_ids[s : s + args.seq + 1] for s in starts])).to(dev)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            ppl = evaluate.perplexity(model, held_ids, n_ctx=args.seq, device=dev)
            entry = {"step": step + 1, "train_loss": round(loss.item(), 4), "held_out_ppl": round(ppl, 3),
                     "minutes": round((time.time() - t0) / 60, 2)}
            log.append(entry)
            tqdm.write(json.dumps(entry))
    minutes = (time.time() - t0) / 60

    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith("rope_")}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(cfg.hf_config(), indent=2) + "\n")
    info = {
        "settings": vars(args) | {"out_dir": str(out)},
        "config": asdict(cfg),
        "n_params": model.n_params(),
        "corpus": {"package": "bible-kjv-text 4.38 (Debian)", "sha256": text.sha256,
                   "train_tokens": int(len(train_ids)), "held_out_tokens": int(len(held_ids))},
        "held_out_ppl_method": "llama.cpp perplexity: chunks of n_ctx, BOS first, second half scored",
        "n_ctx": args.seq,
        "log": log,
        "minutes": round(minutes, 1),
        "device": str(dev),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    (out / "train_log.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"done in {minutes:.1f} min; held-out perplexity {log[-1]['held_out_ppl']}")


if __name__ == "__main__":
    main()
