#!/usr/bin/env python3
"""Write a synthetic BitNet GGUF of any shape with random ternary weights.

For benchmarks: the numbers are random, the shape and the bytes are real.
Tensors are generated and written one at a time, so memory stays around the
size of the largest tensor.

    python tools/synth_model.py out.gguf --shape 2b4t --format I2_S

Shapes: ``2b4t`` is BitNet-b1.58-2B-4T (hidden 2560, ffn 6912, 30 layers,
20 heads, 5 kv heads, vocab 128256, tied embeddings); ``tiny`` is for smoke tests.
"""

from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Shape:
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_vocab: int
    n_ctx: int = 4096


SHAPES = {
    "2b4t": Shape(2560, 6912, 30, 20, 5, 128256),
    "tiny": Shape(256, 512, 2, 4, 2, 512, 256),
}

ALIGN = 32
GGUF_STRING, GGUF_UINT32, GGUF_FLOAT32, GGUF_ARRAY, GGUF_INT32 = 8, 4, 6, 9, 5
TYPE_IDS = {"F32": 0, "F16": 1, "TQ2_0": 35, "I2_S": 36}


def gguf_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv_bytes(key: str, value: object) -> bytes:
    if isinstance(value, str):
        return gguf_str(key) + struct.pack("<I", GGUF_STRING) + gguf_str(value)
    if isinstance(value, float):
        return gguf_str(key) + struct.pack("<If", GGUF_FLOAT32, value)
    if isinstance(value, int):
        return gguf_str(key) + struct.pack("<II", GGUF_UINT32, value)
    raise TypeError(key)


def spm_vocab_kvs(n_vocab: int) -> list[bytes]:
    """A placeholder SentencePiece ("llama") vocabulary of n_vocab tokens: <unk> <s> </s>,
    the 256 byte tokens <0xXX>, then "\u2581t<i>". Only so that loaders which require
    tokenizer.ggml.* (llama.cpp, ik_llama.cpp, bitnet.cpp, llama-bench) accept the file."""
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    toks += [f"\u2581t{i}" for i in range(len(toks), n_vocab)]
    types = [2, 3, 3] + [6] * 256 + [1] * (n_vocab - 259)  # UNKNOWN, CONTROL, BYTE, NORMAL
    scores = np.zeros(n_vocab, dtype="<f4")
    scores[259:] = -np.arange(259, n_vocab, dtype=np.float32)
    arr = struct.pack("<I", GGUF_ARRAY)
    return [
        kv_bytes("tokenizer.ggml.model", "llama"),
        gguf_str("tokenizer.ggml.tokens") + arr + struct.pack("<IQ", GGUF_STRING, n_vocab)
        + b"".join(gguf_str(t) for t in toks[:n_vocab]),
        gguf_str("tokenizer.ggml.scores") + arr + struct.pack("<IQ", GGUF_FLOAT32, n_vocab) + scores.tobytes(),
        gguf_str("tokenizer.ggml.token_type") + arr + struct.pack("<IQ", GGUF_INT32, n_vocab)
        + np.asarray(types[:n_vocab], dtype="<i4").tobytes(),
        kv_bytes("tokenizer.ggml.bos_token_id", 1),
        kv_bytes("tokenizer.ggml.eos_token_id", 2),
        kv_bytes("tokenizer.ggml.unknown_token_id", 0),
    ]


def tensor_nbytes(fmt: str, n_in: int, n_out: int) -> int:
    n = n_in * n_out
    return {"F32": 4 * n, "F16": 2 * n, "TQ2_0": n // 256 * 66, "I2_S": n // 4 + 32}[fmt]


def pack_ternary(fmt: str, codes: np.ndarray, scale: float) -> bytes:
    """codes: uint8 in {0,1,2} (value = code - 1), row-major (n_out, n_in)."""
    if fmt == "I2_S":
        blocks = codes.reshape(-1, 4, 32).astype(np.uint8)
        packed = (blocks[:, 0] << 6) | (blocks[:, 1] << 4) | (blocks[:, 2] << 2) | blocks[:, 3]
        tail = struct.pack("<f", scale) + bytes(28)
        return packed.tobytes() + tail
    if fmt == "TQ2_0":
        blocks = codes.reshape(-1, 2, 4, 32).astype(np.uint8)  # 256 = 2 halves x 4 shifts x 32 bytes
        qs = (blocks[:, :, 0] | (blocks[:, :, 1] << 2) | (blocks[:, :, 2] << 4) | (blocks[:, :, 3] << 6))
        qs = qs.reshape(-1, 64)
        d = np.full((qs.shape[0], 1), scale, dtype=np.float16).view(np.uint8).reshape(-1, 2)
        return np.concatenate([qs, d], axis=1).tobytes()
    values = (codes.astype(np.float32) - 1.0) * scale
    return values.astype(np.float16 if fmt == "F16" else np.float32).tobytes()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--format", choices=["I2_S", "TQ2_0", "F16", "F32"], default="I2_S")
    ap.add_argument("--embd-format", choices=["F16", "F32"], default="F16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arch", choices=["bitnet-b1.58", "bitnet-25", "bitnet"], default="bitnet-b1.58",
                    help="general.architecture (bitnet = 1bitLLM family: SiLU FFN; the others: squared ReLU)")
    ap.add_argument("--vocab", choices=["none", "spm"], default="none",
                    help="spm: add a placeholder SentencePiece vocabulary (needed by llama.cpp-family loaders)")
    args = ap.parse_args(argv)
    s = SHAPES[args.shape]
    rng = np.random.default_rng(args.seed)
    arch = args.arch
    head_dim = s.n_embd // s.n_head
    kv_dim = s.n_head_kv * head_dim

    kvs = [
        kv_bytes("general.architecture", arch),
        kv_bytes("general.name", f"synthetic-{args.shape}-{args.format}"),
        kv_bytes(f"{arch}.context_length", s.n_ctx),
        kv_bytes(f"{arch}.embedding_length", s.n_embd),
        kv_bytes(f"{arch}.block_count", s.n_layer),
        kv_bytes(f"{arch}.feed_forward_length", s.n_ff),
        kv_bytes(f"{arch}.attention.head_count", s.n_head),
        kv_bytes(f"{arch}.attention.head_count_kv", s.n_head_kv),
        kv_bytes(f"{arch}.rope.freq_base", 500000.0),
        kv_bytes(f"{arch}.rope.dimension_count", head_dim),
        kv_bytes(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5),
        kv_bytes(f"{arch}.vocab_size", s.n_vocab),
    ]
    if args.vocab == "spm":
        kvs += spm_vocab_kvs(s.n_vocab)
    # (name, format, n_in, n_out); 1-D tensors have n_out = 1
    tensors: list[tuple[str, str, int, int]] = [
        ("token_embd.weight", args.embd_format, s.n_embd, s.n_vocab),
        ("output_norm.weight", "F32", s.n_embd, 1),
    ]
    for i in range(s.n_layer):
        b = f"blk.{i}."
        tensors += [
            (b + "attn_norm.weight", "F32", s.n_embd, 1),
            (b + "attn_sub_norm.weight", "F32", s.n_embd, 1),
            (b + "ffn_norm.weight", "F32", s.n_embd, 1),
            (b + "ffn_sub_norm.weight", "F32", s.n_ff, 1),
            (b + "attn_q.weight", args.format, s.n_embd, s.n_embd),
            (b + "attn_k.weight", args.format, s.n_embd, kv_dim),
            (b + "attn_v.weight", args.format, s.n_embd, kv_dim),
            (b + "attn_output.weight", args.format, s.n_embd, s.n_embd),
            (b + "ffn_gate.weight", args.format, s.n_embd, s.n_ff),
            (b + "ffn_up.weight", args.format, s.n_embd, s.n_ff),
            (b + "ffn_down.weight", args.format, s.n_ff, s.n_embd),
        ]

    infos = b""
    offset = 0
    for name, fmt, n_in, n_out in tensors:
        dims = [n_in] if n_out == 1 else [n_in, n_out]
        infos += gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", TYPE_IDS[fmt], offset)
        offset += (tensor_nbytes(fmt, n_in, n_out) + ALIGN - 1) // ALIGN * ALIGN
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + infos
    header += bytes((-len(header)) % ALIGN)

    with open(args.out, "wb") as f:
        f.write(header)
        for k, (name, fmt, n_in, n_out) in enumerate(tensors):
            if n_out == 1:
                data = (1.0 + 0.1 * rng.standard_normal(n_in)).astype(np.float32).tobytes()
            elif name == "token_embd.weight":
                emb = (0.25 * rng.standard_normal((n_out, n_in), dtype=np.float32))
                data = emb.astype(np.float16 if fmt == "F16" else np.float32).tobytes()
            else:
                codes = rng.integers(0, 3, size=(n_out, n_in), dtype=np.uint8)
                data = pack_ternary(fmt, codes, scale=float(np.float16(0.02)))
            assert len(data) == tensor_nbytes(fmt, n_in, n_out), name
            f.write(data)
            f.write(bytes((-len(data)) % ALIGN))
            print(f"\r[{k + 1}/{len(tensors)}] {name:<28}", end="", file=sys.stderr)
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
