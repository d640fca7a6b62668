"""Hugging Face checkpoint directory (config.json + *.safetensors) -> a conversion Plan.

Three kinds of checkpoint, told apart by config.json ``architectures`` (then ``model_type``):

- ``BitNetForCausalLM`` (transformers model_type "bitnet", microsoft/bitnet-b1.58-2B-4T)
  -> GGUF arch ``bitnet-b1.58``: relu^2 FFN, attn/ffn sub norms, NEOX rope, output tied
  unless ``lm_head.weight`` is given and untied.
- ``BitnetForCausalLM`` (1bitLLM/bitnet_b1_58-*, LLaMA layout + sub norms, SiLU) -> arch
  ``bitnet``: weights written as pure {-1, 0, +1} with the scale in a 1-element
  ``<name>.scale`` tensor (as ik_llama.cpp's converter writes them); the output is always
  token_embd.
- ``LlamaForCausalLM`` (Falcon3-*-1.58bit, Llama3-8B-1.58, or a plain float LLaMA) -> arch
  ``llama``: NORM (GPT-J) rope, so q/k rows are permuted from HF's rotate_half order.

Linear weights come in three forms:

- packed (``quantization_config.quant_method == "bitnet"``, dtype uint8): transformers'
  src/transformers/integrations/bitnet.py (read at commit 0b4060e7): ``pack_weights`` /
  ``unpack_weights`` store 4 ternary codes (value + 1, 2 bits each) per byte *along the
  output dimension*: a (out, in) weight is a (out/4, in) uint8 tensor whose row r holds
  output rows r, r + out/4, r + 2 out/4, r + 3 out/4 in bits 0-1, 2-3, 4-5, 6-7.
  ``BitLinear.forward`` computes ``F.linear(x_q, w_q)`` and then ``post_quant_process``
  divides by ``input_scale * weight_scale``: with ``linear_class = "bitlinear"`` (the
  default) the weight is ``q / weight_scale``. ``AutoBitLinear`` (``linear_class =
  "autobitlinear"``) multiplies its output by ``weight_scale``: weight ``q * weight_scale``.
- float master weights of a BitNet model (or of any model whose quantization_config says
  "bitnet"): ternarized here with BitNet's absmean quantizer, exactly what the model's
  forward pass does to them (``WeightQuant`` in the same file; 1bitLLM's ``weight_quant``).
- float weights of a LLaMA without such a config: taken as they are (a ternary format
  then needs them to already be {-1, 0, +1} x one scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._convert_common import (EMBEDDING, FLOAT32, KV, LINEAR, STRING, UINT32, VECTOR, ConvertError, OutTensor,
                              Plan, Rows, read_json)
from ._convert_safetensors import FLOAT_DTYPES, SafetensorsDir
from ._quantize_np import Ternary, ternarize_absmean

ARCH_BY_CLASS = {
    "BitNetForCausalLM": "bitnet-b1.58",
    "BitnetForCausalLM": "bitnet",
    "LlamaForCausalLM": "llama",
}
ARCH_BY_MODEL_TYPE = {"bitnet": "bitnet-b1.58", "llama": "llama"}
FFN_ACT = {"bitnet-b1.58": ("relu2",), "bitnet": ("silu", "swish"), "llama": ("silu", "swish")}
SUB_NORMS = ("bitnet-b1.58", "bitnet")

# HF linear module (under model.layers.N.) -> GGUF tensor base name
LINEARS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
# GGUF norm -> the HF names it has (microsoft's names first, then 1bitLLM's / gguf-py's)
NORMS = {
    "attn_norm": ("input_layernorm",),
    "ffn_norm": ("post_attention_layernorm",),
    "attn_sub_norm": ("self_attn.attn_sub_norm", "self_attn.inner_attn_ln"),
    "ffn_sub_norm": ("mlp.ffn_sub_norm", "mlp.ffn_layernorm"),
}
IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)  # buffers some old checkpoints saved
EMBD_CHUNK_ROWS = 4096


def detect_arch(config: dict[str, Any], where: Path) -> str:
    """The GGUF architecture for a config.json."""
    archs = config.get("architectures") or []
    for a in archs:
        if a in ARCH_BY_CLASS:
            return ARCH_BY_CLASS[a]
    mt = config.get("model_type")
    if not archs and mt in ARCH_BY_MODEL_TYPE:
        return ARCH_BY_MODEL_TYPE[mt]
    what = ", ".join(map(str, archs)) if archs else f"model_type {mt!r}"
    raise ConvertError(f"{where}: unknown architecture {what} (known: {', '.join(ARCH_BY_CLASS)})",
                       unsupported=True)


@dataclass
class HParams:
    arch: str
    name: str
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx: int
    eps: float
    rope_base: float
    rope_freqs: np.ndarray | None


def read_hparams(config: dict[str, Any], arch: str, directory: Path) -> HParams:
    where = directory / "config.json"

    def need(*keys: str) -> Any:
        for k in keys:
            if config.get(k) is not None:
                return config[k]
        raise ConvertError(f"{where}: missing {keys[0]!r}")

    def dim(*keys: str) -> int:
        v = need(*keys)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ConvertError(f"{where}: {keys[0]!r} is {v!r}, expected a positive integer")
        return v

    n_embd, n_head = dim("hidden_size"), dim("num_attention_heads")
    n_head_kv = dim("num_key_value_heads") if config.get("num_key_value_heads") is not None else n_head
    head_dim = n_embd // n_head
    if n_embd % n_head or config.get("head_dim") not in (None, head_dim):
        raise ConvertError(f"{where}: head_dim {config.get('head_dim')} x {n_head} heads != hidden_size {n_embd} "
                           f"(the engine needs head_dim = hidden_size / num_attention_heads)", unsupported=True)
    if n_head % n_head_kv:
        raise ConvertError(f"{where}: num_attention_heads {n_head} is not a multiple of num_key_value_heads {n_head_kv}")
    act = config.get("hidden_act", FFN_ACT[arch][0])
    if act not in FFN_ACT[arch]:
        raise ConvertError(f"{where}: hidden_act {act!r}, but GGUF arch {arch} computes {FFN_ACT[arch][0]}",
                           unsupported=True)
    eps = float(need("rms_norm_eps", "layer_norm_eps"))
    rope_base = float(config.get("rope_theta") or 10000.0)
    name = str(config.get("_name_or_path") or "").rstrip("/").split("/")[-1] or directory.resolve().name
    return HParams(arch, name, n_embd, dim("intermediate_size"), dim("num_hidden_layers"), n_head, n_head_kv,
                   head_dim, dim("max_position_embeddings", "seq_length", "n_positions"), eps, rope_base,
                   rope_freqs(config.get("rope_scaling"), head_dim, rope_base, where))


def rope_freqs(scaling: Any, head_dim: int, base: float, where: Path) -> np.ndarray | None:
    """Per-frequency divisors for the engine's optional ``rope_freqs`` tensor (angle =
    pos * base^(-2i/d) / rope_freqs[i]), from config.json ``rope_scaling``."""
    if not scaling:
        return None
    kind = scaling.get("rope_type", scaling.get("type"))
    factor = float(scaling.get("factor", 1.0))
    if kind in ("linear",):  # positions divided by factor == every frequency divided by it
        return None if factor == 1.0 else np.full(head_dim // 2, factor, dtype=np.float32)
    if kind == "llama3":
        # transformers' _compute_llama3_parameters (and llama.cpp's converter): wavelengths
        # above low_freq_wavelen are divided by factor, below high_freq_wavelen kept, and
        # smoothly interpolated between.
        low, high = float(scaling.get("low_freq_factor", 1.0)), float(scaling.get("high_freq_factor", 4.0))
        old = float(scaling.get("original_max_position_embeddings", 8192))
        out = []
        for i in range(0, head_dim, 2):
            wavelen = 2 * math.pi * base ** (i / head_dim)
            if wavelen < old / high:
                out.append(1.0)
            elif wavelen > old / low:
                out.append(factor)
            else:
                smooth = (old / wavelen - low) / (high - low)
                out.append(1 / ((1 - smooth) / factor + smooth))
        return np.array(out, dtype=np.float32)
    raise ConvertError(f"{where}: rope_scaling type {kind!r} is not supported (linear and llama3 are)",
                       unsupported=True)


def unpack_hf_packed(packed: np.ndarray) -> np.ndarray:
    """transformers' ``unpack_weights``: (out/4, in) uint8 -> (out, in) codes - 1 in {-1, 0, 1};
    output row i*P + r (P = out/4) is bits 2i..2i+1 of packed row r."""
    p = np.asarray(packed, dtype=np.uint8)
    codes = np.concatenate([(p >> (2 * i)) & 3 for i in range(4)], axis=0)
    if np.any(codes == 3):
        raise ValueError("a 2-bit code is 3 (only 0, 1, 2 encode -1, 0, +1)")
    return codes.astype(np.int8) - 1


def permute_for_norm_rope(rows: np.ndarray, n_heads: int) -> np.ndarray:
    """HF LLaMA q/k rows (rotate_half: pairs (i, i + d/2)) -> GGUF llama order (pairs
    (2i, 2i + 1)), as llama.cpp's converter permutes them; works on rows of any width."""
    r = rows.shape[0]
    return rows.reshape(n_heads, 2, r // n_heads // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


class HFCheckpoint:
    """Reads linear weights, vectors and the embedding of one checkpoint directory."""

    def __init__(self, directory: Path, config: dict[str, Any], arch: str) -> None:
        self.dir = directory
        self.st = SafetensorsDir(directory)
        self.arch = arch
        qc = config.get("quantization_config") or {}
        self.bitnet_quant = qc.get("quant_method") == "bitnet"
        self.linear_class = qc.get("linear_class", "bitlinear")
        if self.bitnet_quant and self.linear_class not in ("bitlinear", "autobitlinear"):
            raise ConvertError(f"{directory / 'config.json'}: quantization_config.linear_class "
                               f"{self.linear_class!r} is not known", unsupported=True)
        self.ternarize_float = arch in SUB_NORMS or self.bitnet_quant
        self.used: set[str] = set()

    def has(self, name: str) -> bool:
        return name in self.st

    def take(self, name: str) -> str:
        if name not in self.st:
            raise ConvertError(f"{self.dir}: tensor {name} is missing from the checkpoint")
        self.used.add(name)
        return name

    def check_shape(self, name: str, want: tuple[int, ...]) -> None:
        got = self.st.shape(name)
        if got != want:
            raise ConvertError(f"{self.dir}: tensor {name} has shape {list(got)}, expected {list(want)}")

    def vector(self, name: str, n: int) -> np.ndarray:
        self.check_shape(name, (n,))
        return self.st.float32(name)

    def linear(self, base: str, n_out: int, n_in: int) -> Ternary | np.ndarray:
        """The weight of linear module ``base`` as a Ternary (ternary models) or float32."""
        wname, sname = base + ".weight", base + ".weight_scale"
        dtype = self.st.dtype(wname)
        if dtype == "U8":
            if n_out % 4:
                raise ConvertError(f"{wname}: packed ternary weights need out_features {n_out} to be a multiple of 4")
            self.check_shape(wname, (n_out // 4, n_in))
            try:
                q = unpack_hf_packed(self.st.raw(wname))
            except ValueError as exc:
                raise ConvertError(f"{self.dir}: tensor {wname}: {exc}") from None
            return Ternary(q, self._scale(sname, wname))
        if dtype not in FLOAT_DTYPES:
            raise ConvertError(f"{self.dir}: tensor {wname} has dtype {dtype} (float or packed uint8 expected)")
        self.check_shape(wname, (n_out, n_in))
        w = self.st.float32(wname)
        if sname in self.st:  # unpacked offline weights: codes stored as floats, scale beside them
            q = np.rint(w)
            if np.any(q != w) or np.any(np.abs(q) > 1):
                raise ConvertError(f"{self.dir}: tensor {wname} has a weight_scale but its values are not -1, 0, 1")
            return Ternary(q.astype(np.int8), self._scale(sname, wname))
        if self.ternarize_float:
            return ternarize_absmean(w)
        return w

    def _scale(self, sname: str, wname: str) -> np.ndarray:
        ws = self.st.float32(self.take(sname)).reshape(-1)
        if ws.size != 1 or not np.isfinite(ws[0]) or ws[0] <= 0:
            raise ConvertError(f"{self.dir}: tensor {sname} must be one positive number, got {ws[:4].tolist()}")
        # BitLinear divides its output by weight_scale, AutoBitLinear multiplies (module docstring)
        d = np.float32(1) / ws[0] if self.linear_class == "bitlinear" else ws[0]
        return np.full((1, 1), d, dtype=np.float32)

    def rows(self, name: str) -> Rows:
        n_rows, n = self.st.shape(name)
        return Rows(n_rows, n, lambda sl: self.st.float32(name, sl))

    def same_values(self, a: str, b: str) -> bool:
        if self.st.shape(a) != self.st.shape(b) or self.st.dtype(a) != self.st.dtype(b):
            return False
        ra, rb = self.st.raw(a), self.st.raw(b)
        return all(np.array_equal(ra[i : i + EMBD_CHUNK_ROWS], rb[i : i + EMBD_CHUNK_ROWS])
                   for i in range(0, ra.shape[0], EMBD_CHUNK_ROWS))


def plan_from_hf(directory: Path) -> tuple[Plan, HParams, dict[str, Any]]:
    """Metadata (without the tokenizer and file type) and tensors of a checkpoint directory."""
    config = read_json(directory / "config.json")
    assert config is not None
    arch = detect_arch(config, directory / "config.json")
    hp = read_hparams(config, arch, directory)
    ck = HFCheckpoint(directory, config, arch)
    plan = Plan(arch)
    plan.closers.append(ck.st.close)

    embd = ck.take("model.embed_tokens.weight")
    if len(ck.st.shape(embd)) != 2 or ck.st.shape(embd)[1] != hp.n_embd:
        raise ConvertError(f"{directory}: tensor {embd} has shape {list(ck.st.shape(embd))}, "
                           f"expected [vocab_size, {hp.n_embd}]")
    n_vocab = ck.st.shape(embd)[0]
    if config.get("vocab_size") not in (None, n_vocab):
        raise ConvertError(f"{directory / 'config.json'}: vocab_size {config['vocab_size']}, but {embd} has "
                           f"{n_vocab} rows")

    a = arch
    plan.kvs += [
        KV("general.name", hp.name, STRING),
        KV(f"{a}.vocab_size", n_vocab, UINT32),
        KV(f"{a}.context_length", hp.n_ctx, UINT32),
        KV(f"{a}.embedding_length", hp.n_embd, UINT32),
        KV(f"{a}.block_count", hp.n_layer, UINT32),
        KV(f"{a}.feed_forward_length", hp.n_ff, UINT32),
        KV(f"{a}.attention.head_count", hp.n_head, UINT32),
        KV(f"{a}.attention.head_count_kv", hp.n_head_kv, UINT32),
        KV(f"{a}.attention.layer_norm_rms_epsilon", hp.eps, FLOAT32),
        KV(f"{a}.rope.freq_base", hp.rope_base, FLOAT32),
        KV(f"{a}.rope.dimension_count", hp.head_dim, UINT32),
    ]
    if arch == "bitnet":  # what ik_llama.cpp's / llama.cpp's converters write for this arch
        plan.kvs += [KV(f"{a}.rope.scaling.type", "linear", STRING), KV(f"{a}.rope.scaling.factor", 1.0, FLOAT32)]

    T = plan.tensors
    T.append(OutTensor("token_embd.weight", EMBEDDING, (n_vocab, hp.n_embd), lambda: ck.rows(embd), embd))
    if hp.rope_freqs is not None:
        freqs = hp.rope_freqs
        T.append(OutTensor("rope_freqs.weight", VECTOR, freqs.shape, lambda: freqs, "config.json rope_scaling"))

    q_dim, kv_dim = hp.n_head * hp.head_dim, hp.n_head_kv * hp.head_dim
    shapes = {"attn_q": (q_dim, hp.n_embd), "attn_k": (kv_dim, hp.n_embd), "attn_v": (kv_dim, hp.n_embd),
              "attn_output": (hp.n_embd, q_dim), "ffn_gate": (hp.n_ff, hp.n_embd), "ffn_up": (hp.n_ff, hp.n_embd),
              "ffn_down": (hp.n_embd, hp.n_ff)}
    norm_len = {"attn_norm": hp.n_embd, "ffn_norm": hp.n_embd, "attn_sub_norm": q_dim, "ffn_sub_norm": hp.n_ff}
    rope_heads = {"attn_q": hp.n_head, "attn_k": hp.n_head_kv} if arch == "llama" else {}
    for il in range(hp.n_layer):
        hf, blk = f"model.layers.{il}.", f"blk.{il}."
        for gname, hf_names in NORMS.items():
            if gname.endswith("sub_norm") and arch not in SUB_NORMS:
                continue
            found = [hf + n + ".weight" for n in hf_names if ck.has(hf + n + ".weight")]
            src = ck.take(found[0] if found else hf + hf_names[0] + ".weight")
            T.append(OutTensor(blk + gname + ".weight", VECTOR, (norm_len[gname],),
                               _vector_loader(ck, src, norm_len[gname]), src))
        for hf_mod, gname in LINEARS.items():
            n_out, n_in = shapes[gname]
            base = hf + hf_mod
            ck.take(base + ".weight")
            T.extend(_linear_tensors(ck, base, blk + gname, n_out, n_in, rope_heads.get(gname)))
            if ck.has(base + ".bias"):
                bname = ck.take(base + ".bias")
                T.append(OutTensor(blk + gname + ".bias", VECTOR, (n_out,),
                                   _vector_loader(ck, bname, n_out, rope_heads.get(gname)), bname))

    norm = ck.take("model.norm.weight")
    T.append(OutTensor("output_norm.weight", VECTOR, (hp.n_embd,), _vector_loader(ck, norm, hp.n_embd), norm))
    if ck.has("lm_head.weight"):
        head = ck.take("lm_head.weight")
        ck.check_shape(head, (n_vocab, hp.n_embd))
        tied = bool(config.get("tie_word_embeddings", False))
        if not tied and arch == "bitnet" and not ck.same_values(head, embd):
            raise ConvertError(f"{directory}: GGUF arch bitnet always uses token_embd as the output matrix, but "
                               f"lm_head.weight differs from model.embed_tokens.weight", unsupported=True)
        if not tied and arch != "bitnet":
            T.append(OutTensor("output.weight", EMBEDDING, (n_vocab, hp.n_embd), lambda: ck.rows(head), head))

    left = [n for n in ck.st.names() if n not in ck.used and not n.endswith(IGNORED_SUFFIXES)]
    if left:
        more = f" and {len(left) - 5} more" if len(left) > 5 else ""
        raise ConvertError(f"{directory}: tensors this {arch} conversion does not know: {', '.join(sorted(left)[:5])}"
                           f"{more} (is config.json's architecture right?)", unsupported=True)
    return plan, hp, config


def _vector_loader(ck: HFCheckpoint, name: str, n: int, rope_heads: int | None = None) -> Any:
    ck.check_shape(name, (n,))

    def load() -> np.ndarray:
        v = ck.vector(name, n)
        return permute_for_norm_rope(v, rope_heads) if rope_heads else v

    return load


def _linear_tensors(ck: HFCheckpoint, base: str, gname: str, n_out: int, n_in: int,
                    rope_heads: int | None) -> list[OutTensor]:
    """The weight (and for arch ``bitnet`` its ``.scale``) of one linear module."""
    wname = base + ".weight"
    if ck.has(base + ".weight_scale"):
        ck.take(base + ".weight_scale")
    packed = ck.st.dtype(wname) == "U8"
    ck.check_shape(wname, (n_out // 4 if packed else n_out, n_in))  # fail before anything is written
    scale: dict[str, np.float32] = {}

    def load() -> Ternary | np.ndarray:
        w = ck.linear(base, n_out, n_in)
        if rope_heads:
            w = Ternary(permute_for_norm_rope(w.q, rope_heads), w.d) if isinstance(w, Ternary) \
                else permute_for_norm_rope(w, rope_heads)
        if ck.arch == "bitnet":  # pure codes; the scale goes to <name>.scale
            assert isinstance(w, Ternary) and w.d.shape == (1, 1)
            scale["s"] = w.d[0, 0]
            w = Ternary(w.q, np.ones((1, 1), dtype=np.float32))
        return w

    out = [OutTensor(gname + ".weight", LINEAR, (n_out, n_in), load, wname)]
    if ck.arch == "bitnet":
        # written right after the weight, whose loading computed the scale
        out.append(OutTensor(gname + ".scale", VECTOR, (1,), lambda: np.array([scale["s"]], dtype=np.float32),
                             wname))
    return out
