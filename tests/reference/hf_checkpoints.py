"""Tiny synthetic Hugging Face checkpoint directories for the converter tests, and the
numpy reference weights a checkpoint stands for.

    ck = build(tmp_path / "b158", "b158", packed=False)   # writes config.json, model.safetensors, tokenizer
    ref = reference_gguf(ck)                              # gguf_io.GGUFFile of the dequantized weights

Kinds (config.json ``architectures``):

- ``b158``: ``BitNetForCausalLM`` (microsoft/bitnet-b1.58-2B-4T layout: self_attn.attn_sub_norm,
  mlp.ffn_sub_norm, relu2, tied output). ``packed=False``: bf16 master weights, which the
  model ternarizes with absmean on the fly; ``packed=True``: the same master weights
  quantized and packed as transformers' BitNet integration stores them (uint8, 4 codes per
  byte along the output dimension, plus ``weight_scale`` = 1 / absmean in bf16).
- ``bitnet``: ``BitnetForCausalLM`` (1bitLLM bitnet_b1_58: float16 master weights, sub norms
  named inner_attn_ln / ffn_layernorm, SiLU, no lm_head).
- ``llama``: ``LlamaForCausalLM`` with packed ternary weights (Falcon3-1.58bit /
  Llama3-8B-1.58 style: quantization_config bitnet), untied lm_head, llama3 rope scaling.
- ``llama-float``: a plain float LLaMA (no quantization_config).

The reference weights are computed here from the written tensors with the formulas of
transformers' src/transformers/integrations/bitnet.py (``WeightQuant``, ``unpack_weights``,
``BitLinear``: weight = codes / weight_scale), independently of bitnet.convert, and kept in
Hugging Face's row order: a LLaMA reference runs with NEOX rope (HF's rotate_half) on
unpermuted q/k, where the converted file runs NORM rope on permuted rows.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import formats as F, gguf_io as G

SHAPE = dict(hidden=256, ffn=512, layers=2, heads=4, kv_heads=2, ctx=256)
SIGMA = dict(q=1.9, k=1.9, v=1.2, o=2.4, gate=1.5, up=1.2, down=2.4)
LINEARS = dict(q="self_attn.q_proj", k="self_attn.k_proj", v="self_attn.v_proj", o="self_attn.o_proj",
               gate="mlp.gate_proj", up="mlp.up_proj", down="mlp.down_proj")
GGUF_LINEAR = dict(q="attn_q", k="attn_k", v="attn_v", o="attn_output", gate="ffn_gate", up="ffn_up", down="ffn_down")
ARCH = {"b158": "bitnet-b1.58", "bitnet": "bitnet", "llama": "llama", "llama-float": "llama"}
TEXTS = ["Hello world, this is a tiny test corpus with 123 numbers and 4567 digits.",
         "Ternary weights: -1, 0, +1! Don't you think they're neat? I'll say it's fine.",
         "Émile ate crème brûlée in Zürich; 東京 and 北京 are cities.  Spaces   and\ttabs\nnew lines."]
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


@dataclass
class Checkpoint:
    dir: Path
    kind: str
    config: dict
    tensors: dict = field(default_factory=dict)   # HF name -> array as stored (BF16 as float32 values)
    dtypes: dict = field(default_factory=dict)    # HF name -> safetensors dtype
    hp: dict = field(default_factory=dict)


# ---- tokenizers ------------------------------------------------------------------------


def train_tokenizer(pre="llama3", vocab_size=300):
    """A byte-level BPE trained on TEXTS with HF ``tokenizers``: ``pre="llama3"`` uses the
    LLaMA-3 split regex (ignore_merges, BOS template), ``"gpt2"`` GPT-2's ByteLevel regex."""
    import tokenizers as tk

    if pre == "llama3":
        tok = tk.Tokenizer(tk.models.BPE(ignore_merges=True))
        tok.pre_tokenizer = tk.pre_tokenizers.Sequence([
            tk.pre_tokenizers.Split(tk.Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok = tk.Tokenizer(tk.models.BPE())
        tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TEXTS * 20, trainer)
    if pre == "llama3":
        tok.post_processor = tk.processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[("<|begin_of_text|>", 0)])
    return tok


def write_tokenizer_json(directory: Path, tok, chat_template=None):
    tok.save(str(directory / "tokenizer.json"))
    cfg = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
           "tokenizer_class": "PreTrainedTokenizerFast"}
    if chat_template:
        cfg["chat_template"] = chat_template
    (directory / "tokenizer_config.json").write_text(json.dumps(cfg))


def _varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _field(no, wire, payload):
    key = _varint(no << 3 | wire)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def sentencepiece_model(pieces, model_type=2, add_dummy_prefix=True) -> bytes:
    """A SentencePiece ModelProto (sentencepiece_model.proto): pieces = field 1 {piece 1,
    score 2 (float), type 3}, trainer_spec = 2 {model_type 3}, normalizer_spec = 3
    {name 1, add_dummy_prefix 3}."""
    out = bytearray()
    for text, score, ty in pieces:
        p = _field(1, 2, text.encode("utf-8")) + _field(2, 5, struct.pack("<f", score)) + _field(3, 0, _varint(ty))
        out += _field(1, 2, p)
    out += _field(2, 2, _field(3, 0, _varint(model_type)) + _field(4, 0, _varint(len(pieces))))
    out += _field(3, 2, _field(1, 2, b"identity") + _field(3, 0, _varint(int(add_dummy_prefix))))
    return bytes(out)


# ---- weights -------------------------------------------------------------------------------


def bf16_round(x):
    return F.bf16r(x).astype(np.float32)


def absmean_ternary(w):
    """transformers WeightQuant.forward in float32: s = 1/clamp(mean|w|, 1e-5); round(w*s).clamp(-1,1)."""
    w = np.asarray(w, np.float32)
    s = np.float32(1) / max(np.float32(np.abs(w).mean(dtype=np.float32)), np.float32(1e-5))
    return np.clip(np.rint(w * s), -1, 1), s


def hf_pack(q):
    """transformers pack_weights: ternary (out, in) -> (ceil(out/4), in) uint8."""
    out = q.shape[0]
    row_dim = (out + 3) // 4
    u = (np.asarray(q) + 1).astype(np.uint8)
    packed = np.zeros((row_dim,) + q.shape[1:], np.uint8)
    for i in range(min(4, out // row_dim + 1)):
        start, end = i * row_dim, min((i + 1) * row_dim, out)
        packed[: end - start] |= u[start:end] << (2 * i)
    return packed


def hf_unpack(packed):
    """transformers unpack_weights: rows [i*P, (i+1)*P) are bits 2i..2i+1, minus 1."""
    P = packed.shape[0]
    out = np.zeros((4 * P,) + packed.shape[1:], np.uint8)
    for i in range(4):
        out[i * P:(i + 1) * P] = (packed & (3 << 2 * i)) >> (2 * i)
    return out.astype(np.float64) - 1


def write_safetensors(path: Path, tensors: dict, dtypes: dict):
    """A safetensors file, written by ``safetensors.numpy.save_file`` when it can be (no BF16
    tensor); numpy has no bfloat16, so a file with BF16 tensors is written here, in the
    same layout (8-byte header length, JSON header, data)."""
    np_dtype = {"F32": "<f4", "F16": "<f2", "U8": "u1"}
    if "BF16" not in dtypes.values():
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(a, np_dtype[dtypes[k]]) for k, a in tensors.items()}, str(path))
        return
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        dt = dtypes[name]
        raw = (F.bf16_bits(a).astype("<u2") if dt == "BF16" else np.ascontiguousarray(a, np_dtype[dt])).tobytes()
        header[name] = {"dtype": dt, "shape": list(np.shape(a)), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def build(directory: Path, kind="b158", *, packed=False, seed=0, n_vocab=None, tokenizer=None, shape=None,
          rope_scaling=None, untied=None) -> Checkpoint:
    """Write a checkpoint of ``kind`` into ``directory``; returns what was written.
    ``tokenizer``: an HF tokenizers.Tokenizer (saved as tokenizer.json), or a list of
    SentencePiece pieces (saved as tokenizer.model); default: a trained LLaMA-3-style BPE."""
    directory.mkdir(parents=True, exist_ok=True)
    hp = dict(SHAPE, **(shape or {}))
    d, f, L, nh, nkv = hp["hidden"], hp["ffn"], hp["layers"], hp["heads"], hp["kv_heads"]
    hd = d // nh
    if tokenizer is None:
        tokenizer = train_tokenizer("llama3")
    if isinstance(tokenizer, list):
        (directory / "tokenizer.model").write_bytes(sentencepiece_model(tokenizer))
        (directory / "tokenizer_config.json").write_text(json.dumps(
            {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True}))
        tok_vocab = len(tokenizer)
    else:
        write_tokenizer_json(directory, tokenizer, chat_template="{% for m in messages %}{{ m['content'] }}{% endfor %}")
        tok_vocab = tokenizer.get_vocab_size()
    V = n_vocab or tok_vocab
    rng = np.random.default_rng([seed, list(ARCH).index(kind)])
    wdtype = {"b158": "BF16", "bitnet": "F16", "llama": "BF16", "llama-float": "BF16"}[kind]
    untied = kind.startswith("llama") if untied is None else untied

    def rnd(shape_, scale):
        w = rng.standard_normal(shape_) * scale
        return bf16_round(w) if wdtype == "BF16" else F.f16r(w).astype(np.float32)

    T, D = {}, {}

    def put(name, a, dt):
        T[name], D[name] = a, dt

    def norm(n, mean=1.0):
        put_v = rnd((n,), 0.1 * mean) + mean
        return bf16_round(put_v) if wdtype == "BF16" else F.f16r(put_v).astype(np.float32)

    put("model.embed_tokens.weight", rnd((V, d), 0.25), wdtype)
    put("model.norm.weight", norm(d, 4.0), wdtype)
    if untied:
        put("lm_head.weight", rnd((V, d), 0.25), wdtype)
    shapes = dict(q=(nh * hd, d), k=(nkv * hd, d), v=(nkv * hd, d), o=(d, nh * hd), gate=(f, d), up=(f, d),
                  down=(d, f))
    sub = {"b158": ("self_attn.attn_sub_norm", "mlp.ffn_sub_norm"),
           "bitnet": ("self_attn.inner_attn_ln", "mlp.ffn_layernorm")}.get(kind)
    for il in range(L):
        p = f"model.layers.{il}."
        put(p + "input_layernorm.weight", norm(d), wdtype)
        put(p + "post_attention_layernorm.weight", norm(d), wdtype)
        if sub:
            put(p + sub[0] + ".weight", norm(nh * hd), wdtype)
            put(p + sub[1] + ".weight", norm(f), wdtype)
        for key, mod in LINEARS.items():
            n_out, n_in = shapes[key]
            w = rnd((n_out, n_in), SIGMA[key] / math.sqrt(n_in))
            if packed:
                q, s = absmean_ternary(w)
                put(p + mod + ".weight", hf_pack(q), "U8")
                put(p + mod + ".weight_scale", bf16_round(np.array([s], np.float32)), "BF16")
            else:
                put(p + mod + ".weight", w, wdtype)
    config = {
        "architectures": [{"b158": "BitNetForCausalLM", "bitnet": "BitnetForCausalLM"}.get(kind, "LlamaForCausalLM")],
        "model_type": {"b158": "bitnet"}.get(kind, "llama"),
        "hidden_size": d, "intermediate_size": f, "num_hidden_layers": L, "num_attention_heads": nh,
        "num_key_value_heads": nkv, "hidden_act": "relu2" if kind == "b158" else "silu",
        "max_position_embeddings": hp["ctx"], "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0 if kind == "b158" else 10000.0, "vocab_size": V,
        "tie_word_embeddings": not untied, "bos_token_id": 0, "eos_token_id": 1,
        "torch_dtype": "bfloat16" if wdtype == "BF16" else "float16",
    }
    if packed:
        config["quantization_config"] = {"quant_method": "bitnet", "linear_class": "bitlinear",
                                         "quantization_mode": "offline"}
    if rope_scaling:
        config["rope_scaling"] = rope_scaling
    (directory / "config.json").write_text(json.dumps(config, indent=1))
    write_safetensors(directory / "model.safetensors", T, D)
    return Checkpoint(directory, kind, config, T, D, dict(hp, vocab=V, head_dim=hd))


# ---- the reference model a checkpoint stands for ------------------------------------------


def linear_values(ck: Checkpoint, name: str) -> np.ndarray:
    """The weight values the HF model multiplies with (float64, HF row order)."""
    w = ck.tensors[name]
    if ck.dtypes[name] == "U8":  # BitLinear: F.linear(x_q, unpack(w)) / weight_scale
        ws = float(ck.tensors[name + "_scale"][0])
        return hf_unpack(w) / ws
    if ck.kind == "llama-float":
        return np.asarray(w, np.float64)
    q, s = absmean_ternary(w)  # online quantization of the master weights
    return q.astype(np.float64) / np.float64(s)


def llama3_inv_freq(inv_freq, rs):
    """transformers _compute_llama3_parameters."""
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    low_wl, high_wl = old / low, old / high
    wavelen = 2 * math.pi / inv_freq
    out = np.where(wavelen > low_wl, inv_freq / factor, inv_freq)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = (wavelen >= high_wl) & (wavelen <= low_wl)
    return np.where(medium, smoothed, out)


def reference_gguf(ck: Checkpoint) -> G.GGUFFile:
    """A float32 GGUF (gguf_io, in memory) of the weights ``ck`` stands for, in HF row order,
    for reference.forward.ReferenceModel (run LLaMA ones with overrides={"rope": "neox"})."""
    hp, arch = ck.hp, ARCH[ck.kind]
    g = G.GGUFFile()
    kv = g.kv
    kv["general.architecture"] = G.kv_str(arch)
    for k, v in [("context_length", hp["ctx"]), ("embedding_length", hp["hidden"]), ("block_count", hp["layers"]),
                 ("feed_forward_length", hp["ffn"]), ("attention.head_count", hp["heads"]),
                 ("attention.head_count_kv", hp["kv_heads"])]:
        kv[f"{arch}.{k}"] = G.kv_u32(v)
    kv[f"{arch}.attention.layer_norm_rms_epsilon"] = G.kv_f32(ck.config["rms_norm_eps"])
    kv[f"{arch}.rope.freq_base"] = G.kv_f32(ck.config["rope_theta"])

    def add(name, a):
        a = np.asarray(a, np.float64)
        g.tensors.append(G.Tensor(name, tuple(reversed(a.shape)), F.F32, F.encode("F32", a)))

    t = ck.tensors
    add("token_embd.weight", t["model.embed_tokens.weight"])
    add("output_norm.weight", t["model.norm.weight"])
    if "lm_head.weight" in t:
        add("output.weight", t["lm_head.weight"])
    rs = ck.config.get("rope_scaling")
    if rs:
        hd = hp["head_dim"]
        inv = ck.config["rope_theta"] ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        add("rope_freqs.weight", inv / llama3_inv_freq(inv, rs))
    sub = {"b158": ("self_attn.attn_sub_norm", "mlp.ffn_sub_norm"),
           "bitnet": ("self_attn.inner_attn_ln", "mlp.ffn_layernorm")}.get(ck.kind)
    for il in range(hp["layers"]):
        p, b = f"model.layers.{il}.", f"blk.{il}."
        add(b + "attn_norm.weight", t[p + "input_layernorm.weight"])
        add(b + "ffn_norm.weight", t[p + "post_attention_layernorm.weight"])
        if sub:
            add(b + "attn_sub_norm.weight", t[p + sub[0] + ".weight"])
            add(b + "ffn_sub_norm.weight", t[p + sub[1] + ".weight"])
        for key, mod in LINEARS.items():
            add(b + GGUF_LINEAR[key] + ".weight", linear_values(ck, p + mod + ".weight"))
    return g
