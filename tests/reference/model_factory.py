"""Tiny deterministic random GGUF models in every family and tensor format.

    path = make_model(family="b158", wtype="TQ2_0", emb_type="Q6_K")   # cached in tests/.cache/models

Families: ``b158`` (arch bitnet-b1.58), ``b25`` (arch bitnet-25, same graph), ``bitnet``
(pure {-1,0,+1} weights + per-tensor ``.scale``), ``tern-llama`` (llama, ternary*scale
weights, untied output), ``llama`` (plain float llama, Gaussian weights, untied output).
``wtype``: the type of the 2-D linear weights (F32, F16, BF16, I2_S, TQ1_0, TQ2_0, IQ1_BN,
IQ2_BN, Q8_0, Q4_K, Q6_K); ``emb_type`` / ``out_type``: token_embd / output.weight (the output
of tied families is token_embd). Norms and ``.scale`` stay F32.

Ternary weights are absmean-ternarised as in the goldens; the per-tensor scale is rounded
to a value exact in float16 *and* bfloat16, embeddings to 4 mantissa bits, so F32, F16,
BF16 and every ternary format hold exactly the same weight values.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from . import CACHE_DIR, formats as F, gguf_io as G

ARCH = {"b158": "bitnet-b1.58", "b25": "bitnet-25", "bitnet": "bitnet", "tern-llama": "llama", "llama": "llama"}
FAMILIES = tuple(ARCH)
TIED = ("b158", "b25", "bitnet")
DEFAULT_SHAPE = dict(n_embd=256, n_ff=512, n_layer=2, n_head=4, n_head_kv=2, n_vocab=512, n_ctx=256)
SIGMA = dict(q=1.9, k=1.9, v=1.2, o=2.4, gate=1.5, up=1.2, down=2.4)


def _round_bits(x, mbits):
    m, e = np.frexp(np.asarray(x, dtype=np.float64))
    m = np.round(m * 2.0 ** (mbits + 1)) / 2.0 ** (mbits + 1)
    return F.f16r(np.ldexp(m, e))


def build(family="b158", wtype="F32", emb_type="F32", out_type=None, seed=0, shape=None,
          rope_base=10000.0, eps=1e-5) -> G.GGUFFile:
    hp = dict(DEFAULT_SHAPE, **(shape or {}))
    arch = ARCH[family]
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    d, f, L = hp["n_embd"], hp["n_ff"], hp["n_layer"]
    nh, nkv, V = hp["n_head"], hp["n_head_kv"], hp["n_vocab"]
    hd = d // nh
    g = G.GGUFFile()
    kv = g.kv
    kv["general.architecture"] = G.kv_str(arch)
    kv["general.name"] = G.kv_str(f"test-{family}-{wtype}")
    kv[f"{arch}.context_length"] = G.kv_u32(hp["n_ctx"])
    kv[f"{arch}.embedding_length"] = G.kv_u32(d)
    kv[f"{arch}.block_count"] = G.kv_u32(L)
    kv[f"{arch}.feed_forward_length"] = G.kv_u32(f)
    kv[f"{arch}.attention.head_count"] = G.kv_u32(nh)
    kv[f"{arch}.attention.head_count_kv"] = G.kv_u32(nkv)
    kv[f"{arch}.rope.freq_base"] = G.kv_f32(rope_base)
    kv[f"{arch}.rope.dimension_count"] = G.kv_u32(hd)
    kv[f"{arch}.attention.layer_norm_rms_epsilon"] = G.kv_f32(eps)
    kv[f"{arch}.vocab_size"] = G.kv_u32(V)
    kv["general.file_type"] = G.kv_u32(0)
    if family == "bitnet":
        kv[f"{arch}.rope.scaling.type"] = G.kv_str("linear")
        kv[f"{arch}.rope.scaling.factor"] = G.kv_f32(1.0)
    toks, scores, types = [], [], []
    for i in range(V):
        if i < 3:
            t, ty = ("<unk>", "<s>", "</s>")[i], (2, 3, 3)[i]
        elif i < 3 + 256 and V >= 3 + 256 + 16:
            t, ty = "<0x%02X>" % (i - 3), 6
        else:
            t, ty = "\u2581t%d" % i, 1
        toks.append(t)
        scores.append(-float(i))
        types.append(ty)
    kv["tokenizer.ggml.model"] = G.kv_str("llama")
    kv["tokenizer.ggml.tokens"] = G.kv_arr(G.STRING, toks)
    kv["tokenizer.ggml.scores"] = G.kv_arr(G.FLOAT32, scores)
    kv["tokenizer.ggml.token_type"] = G.kv_arr(G.INT32, types)
    kv["tokenizer.ggml.bos_token_id"] = G.kv_u32(1)
    kv["tokenizer.ggml.eos_token_id"] = G.kv_u32(2)
    kv["tokenizer.ggml.unknown_token_id"] = G.kv_u32(0)
    kv["tokenizer.ggml.add_bos_token"] = G.kv_bool(False)

    def add(name, arr, ttype):
        arr = np.asarray(arr, dtype=np.float64)
        g.tensors.append(G.Tensor(name, tuple(reversed(arr.shape)), F.type_id(ttype), F.encode(ttype, arr)))

    def norm(n, mean=1.0):
        return F.f16r(mean * (1 + 0.1 * rng.standard_normal(n)))

    add("token_embd.weight", _round_bits(rng.standard_normal((V, d)) * 0.25, 4), emb_type)
    add("output_norm.weight", norm(d, 4.0), "F32")
    if family not in TIED:
        add("output.weight", _round_bits(rng.standard_normal((V, d)) * 0.25, 4), out_type or emb_type)
    shapes = dict(q=(nh * hd, d), k=(nkv * hd, d), v=(nkv * hd, d), o=(d, nh * hd), gate=(f, d), up=(f, d), down=(d, f))
    tname = dict(q="attn_q", k="attn_k", v="attn_v", o="attn_output", gate="ffn_gate", up="ffn_up", down="ffn_down")
    for il in range(L):
        p = f"blk.{il}."
        add(p + "attn_norm.weight", norm(d), "F32")
        add(p + "ffn_norm.weight", norm(d), "F32")
        if family in TIED:
            add(p + "attn_sub_norm.weight", norm(d), "F32")
            add(p + "ffn_sub_norm.weight", norm(f), "F32")
        for key in ("q", "k", "v", "o", "gate", "up", "down"):
            n_out, n_in = shapes[key]
            w = rng.standard_normal((n_out, n_in)) * (SIGMA[key] / np.sqrt(n_in))
            if family == "llama":                      # plain float model
                add(p + tname[key] + ".weight", _round_bits(w, 7), wtype)
                continue
            s = float(_round_bits(np.mean(np.abs(w)), 7))      # exact in f16 and bf16
            wt = np.clip(np.round(w / s), -1, 1)
            if family == "bitnet":
                add(p + tname[key] + ".weight", wt, wtype)
                add(p + tname[key] + ".scale", np.array([s]), "F32")
            else:
                add(p + tname[key] + ".weight", wt * s, wtype)
    return g


def make_model(family="b158", wtype="F32", emb_type="F32", out_type=None, seed=0, shape=None, **kw):
    """Build (or reuse from tests/.cache/models) a model file; returns its path."""
    key = json.dumps(dict(family=family, wtype=wtype, emb=emb_type, out=out_type, seed=seed,
                          shape=shape, kw=kw, v=1), sort_keys=True)
    h = hashlib.sha256(key.encode()).hexdigest()[:12]
    d = CACHE_DIR / "models"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{family}-{wtype}-{emb_type}-{out_type or 'same'}-{h}.gguf"
    if not path.exists():
        tmp = path.with_suffix(".tmp%d" % os.getpid())
        build(family, wtype, emb_type, out_type, seed, shape, **kw).write(tmp)
        os.replace(tmp, path)
    return path


def tiny_model_with_tokenizer(directory=None):
    """A tiny b158 I2_S model for text-in/text-out tests: every factory model carries the
    dummy SentencePiece vocabulary (byte tokens included), so any UTF-8 text tokenizes."""
    return make_model(family="b158", wtype="I2_S", emb_type="F16")
