#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

    python fuzz/make_seeds.py            (rewrites the generated seeds; keeps other files,
                                          e.g. crash reproducers added by hand)

fuzz_gguf_load: tiny valid BitNet GGUFs (n_embd 32, 1 layer, 16 or 264 tokens) in
each weight format the synthetic writer knows, one with a SentencePiece vocabulary,
plus truncated copies (header only, mid-data). Built with the helpers of
tools/synth_model.py, so they are the same layout the benchmarks use.

fuzz_tokenizer: a mode byte (bit 0: 0 = SPM, 1 = BPE vocabulary; bit 1: special;
bit 2: add_bos; bit 3: read the rest as int32 ids) followed by a short text.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import synth_model as sm  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus"


def tiny_gguf(arch: str, fmt: str, embd_fmt: str, n_vocab: int = 16, vocab: bool = False, seed: int = 0,
              n_embd: int = 32, n_ff: int = 64) -> bytes:
    n_head, n_head_kv, n_layer, n_ctx = 2, 1, 1, 64
    head_dim = n_embd // n_head
    kv_dim = n_head_kv * head_dim
    rng = np.random.default_rng(seed)
    kvs = [
        sm.kv_bytes("general.architecture", arch),
        sm.kv_bytes(f"{arch}.context_length", n_ctx),
        sm.kv_bytes(f"{arch}.embedding_length", n_embd),
        sm.kv_bytes(f"{arch}.block_count", n_layer),
        sm.kv_bytes(f"{arch}.feed_forward_length", n_ff),
        sm.kv_bytes(f"{arch}.attention.head_count", n_head),
        sm.kv_bytes(f"{arch}.attention.head_count_kv", n_head_kv),
        sm.kv_bytes(f"{arch}.rope.freq_base", 10000.0),
        sm.kv_bytes(f"{arch}.rope.dimension_count", head_dim),
        sm.kv_bytes(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5),
        sm.kv_bytes(f"{arch}.vocab_size", n_vocab),
    ]
    if vocab:
        kvs += sm.spm_vocab_kvs(n_vocab)
    tensors = [("token_embd.weight", embd_fmt, n_embd, n_vocab), ("output_norm.weight", "F32", n_embd, 1)]
    for i in range(n_layer):
        b = f"blk.{i}."
        tensors += [
            (b + "attn_norm.weight", "F32", n_embd, 1),
            (b + "attn_sub_norm.weight", "F32", n_embd, 1),
            (b + "ffn_norm.weight", "F32", n_embd, 1),
            (b + "ffn_sub_norm.weight", "F32", n_ff, 1),
            (b + "attn_q.weight", fmt, n_embd, n_embd),
            (b + "attn_k.weight", fmt, n_embd, kv_dim),
            (b + "attn_v.weight", fmt, n_embd, kv_dim),
            (b + "attn_output.weight", fmt, n_embd, n_embd),
            (b + "ffn_gate.weight", fmt, n_embd, n_ff),
            (b + "ffn_up.weight", fmt, n_embd, n_ff),
            (b + "ffn_down.weight", fmt, n_ff, n_embd),
        ]
    infos, offset = b"", 0
    for name, f, n_in, n_out in tensors:
        dims = [n_in] if n_out == 1 else [n_in, n_out]
        infos += sm.gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", sm.TYPE_IDS[f], offset)
        offset += (sm.tensor_nbytes(f, n_in, n_out) + sm.ALIGN - 1) // sm.ALIGN * sm.ALIGN
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + infos)
    out += bytes((-len(out)) % sm.ALIGN)
    for name, f, n_in, n_out in tensors:
        if n_out == 1:
            data = (1.0 + 0.1 * rng.standard_normal(n_in)).astype(np.float32).tobytes()
        elif name == "token_embd.weight":
            emb = 0.25 * rng.standard_normal((n_out, n_in), dtype=np.float32)
            data = emb.astype(np.float16 if f == "F16" else np.float32).tobytes()
        else:
            data = sm.pack_ternary(f, rng.integers(0, 3, size=(n_out, n_in), dtype=np.uint8), scale=0.02)
        out += data + bytes((-len(data)) % sm.ALIGN)
    return bytes(out)


TEXTS = [
    b"Hello world",
    b" Hello World!\n\n  tabs\tand   spaces ",
    "caf\u00e9 na\u00efve \u2014 \u20ac5, \u4e2d\u6587, \U0001f999 llama".encode(),
    b"<s>special</s> <|eot_id|><|begin_of_text|>x",
    b"1234567890 3.14159 x=y+z; if (a) { b(); }",
    "\u0645\u0631\u062d\u0628\u0627 \u0928\u092e\u0938\u094d\u0924\u0947 \uc548\ub155".encode(),
    b"\r\n\r\n\n\n   \n",
    b"",
]


def main() -> int:
    g = CORPUS / "fuzz_gguf_load"
    t = CORPUS / "fuzz_tokenizer"
    g.mkdir(parents=True, exist_ok=True)
    t.mkdir(parents=True, exist_ok=True)
    models = {
        "b158_f32": tiny_gguf("bitnet-b1.58", "F32", "F32"),
        # I2_S rows are blocks of 128, TQ2_0 rows blocks of 256
        "b158_i2s": tiny_gguf("bitnet-b1.58", "I2_S", "F16", seed=1, n_embd=128, n_ff=128),
        "b158_tq2": tiny_gguf("bitnet-b1.58", "TQ2_0", "F16", seed=2, n_embd=256, n_ff=256),
        "bitnet_f16": tiny_gguf("bitnet", "F16", "F16", seed=3),
        "b25_f32_spm": tiny_gguf("bitnet-25", "F32", "F32", n_vocab=264, vocab=True, seed=4),
    }
    for name, data in models.items():
        (g / f"{name}.gguf").write_bytes(data)
    base = models["b158_f32"]
    (g / "trunc_header.gguf").write_bytes(base[:24])
    (g / "trunc_half.gguf").write_bytes(base[: len(base) // 2])
    (g / "trunc_last_byte.gguf").write_bytes(base[:-1])
    for i, text in enumerate(TEXTS):
        for mode in (0, 1, 2, 3):
            (t / f"text{i}_mode{mode}").write_bytes(bytes([mode]) + text)
    (t / "invalid_utf8").write_bytes(b"\x00ok \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf")
    (t / "ids").write_bytes(bytes([8]) + struct.pack("<6i", 1, 15043, 3186, 2, -1, 1 << 30))
    (t / "ids_bpe").write_bytes(bytes([9]) + struct.pack("<5i", 128000, 9906, 128009, 128256, 5))
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    print(f"{len(list(g.iterdir()))} GGUF seeds, {len(list(t.iterdir()))} tokenizer seeds, {total} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
