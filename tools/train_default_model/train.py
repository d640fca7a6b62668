"""Train the embedded default model from scratch (seeded, CPU or CUDA).

    python tools/train_default_model/train.py OUT_DIR [--steps N] [--threads N] [--resume]

Writes a Hugging Face style checkpoint directory that `bitnet convert` reads:
config.json (BitNetForCausalLM), model.safetensors (float32 master weights),
tokenizer.json, tokenizer_config.json, plus train_log.json (settings, losses,
held-out perplexity, time, versions) and the held-out text (held_out.txt).
Every --checkpoint-every steps it saves OUT_DIR/resume.pt (weights, optimizer,
both random generators, the log), so that a run stopped by Ctrl-C or a
machine's time limit goes on with --resume and ends with the same weights.
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


# The settings a resumed run must share with the run it continues.
_RESUME_KEYS = ("corpus", "steps", "batch", "seq", "lr", "warmup", "weight_decay", "vocab", "hidden", "ffn", "layers",
                "heads", "kv_heads", "seed", "bf16")


def save_resume(path: Path, args: argparse.Namespace, step: int, minutes: float, log: list[dict],
                model: torch.nn.Module, opt: torch.optim.Optimizer, rng: np.random.Generator) -> None:
    """Everything the loop's next step depends on; written to a temporary file
    first, so that a kill during the save leaves the previous one intact."""
    state = {"step": step, "minutes": minutes, "log": log, "model": model.state_dict(), "opt": opt.state_dict(),
             "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
             "settings": {k: getattr(args, k) for k in _RESUME_KEYS}}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_resume(path: Path, args: argparse.Namespace, model: torch.nn.Module, opt: torch.optim.Optimizer,
                rng: np.random.Generator) -> tuple[int, float, list[dict]]:
    state = torch.load(path, weights_only=False)
    mine = {k: getattr(args, k) for k in _RESUME_KEYS}
    if state["settings"] != mine:
        diff = {k: (state["settings"].get(k), v) for k, v in mine.items() if state["settings"].get(k) != v}
        raise SystemExit(f"{path} was saved by a run with other settings (saved, now): {diff}")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    return state["step"], state["minutes"], state["log"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--corpus", choices=corpus.CORPORA, default="kjv",
                   help="kjv: the King James Bible (the shipped model); english: it plus sources.py's texts")
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
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast for the matrix products (2.1x faster on a CPU with AVX512-BF16); "
                        "master weights, optimizer and loss stay float32")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between resume.pt saves (0: never)")
    p.add_argument("--resume", action="store_true", help="go on from OUT_DIR/resume.pt when it exists")
    args = p.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dev = torch.device(args.device)
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    text = corpus.load(args.corpus)
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
    first_step, minutes_before = 0, 0.0
    resume_path = out / "resume.pt"
    if args.resume and resume_path.exists():
        first_step, minutes_before, log = load_resume(resume_path, args, model, opt, rng)
        print(f"resuming at step {first_step} of {args.steps} ({minutes_before:.1f} min so far)")
    t0 = time.time() - 60 * minutes_before
    bar = tqdm(range(first_step, args.steps), desc="training", unit="step", initial=first_step, total=args.steps)
    for step in bar:
        starts = rng.integers(0, len(train_ids) - args.seq - 1, size=args.batch)
        batch = torch.from_numpy(np.stack([train_ids[s : s + args.seq + 1] for s in starts])).to(dev)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, cfg.vocab_size), batch[:, 1:].reshape(-1))
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
        if args.checkpoint_every and (step + 1) % args.checkpoint_every == 0 and step + 1 < args.steps:
            save_resume(resume_path, args, step + 1, (time.time() - t0) / 60, log, model, opt, rng)
    minutes = (time.time() - t0) / 60

    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith("rope_")}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(cfg.hf_config(f"bitnet-{args.corpus}"), indent=2) + "\n")
    info = {
        "settings": vars(args) | {"out_dir": str(out)},
        "config": asdict(cfg),
        "n_params": model.n_params(),
        "corpus": {"name": args.corpus, "sha256": text.sha256, "parts": text.parts,
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
    resume_path.unlink(missing_ok=True)
    print(f"done in {minutes:.1f} min; held-out perplexity {log[-1]['held_out_ppl']}")


if __name__ == "__main__":
    main()
