"""float64 numpy reference forward pass for the BitNet families (shared/docs/formats.md).

Architectures: ``bitnet-b1.58`` / ``bitnet-25`` (relu^2 FFN, sub norms, NEOX rope),
``bitnet`` (SiLU FFN, sub norms, per-tensor ``.scale``, NEOX rope, output = token_embd),
``llama`` (SiLU FFN, no sub norms, NORM rope, optional output.weight).

    ref = ReferenceModel(path)
    ref.logits(ids, emulate_act=False)     # (len(ids), n_vocab) float64, teacher forced
    ref.greedy(prompt_ids, n)              # n argmax tokens (prompt decoded as one batch)

Options:
- ``emulate_act=True``: each matmul input is quantised the way that weight format's
  reference implementation does (act_quant.FOR_WEIGHT_TYPE); float weights: no change.
- ``kv_f16=True`` (or ``"ik"``): K (after rope) and V are rounded to float16 as ik_llama.cpp
  stores its KV cache (for arch ``bitnet``, ik caches V *before* its ``.scale``);
  ``kv_f16="upstream"``: the same, but V rounded after the scale, as upstream llama.cpp does.
- ``dtype=np.float32``: run the whole pass in float32 (used to measure how far two correct
  implementations drift apart).
- ``overrides``: deliberately wrong variants for the tests' sensitivity checks:
  ``ffn_act`` ("silu" | "relu2"), ``rope`` ("neox" | "norm"), ``sub_norms`` (bool),
  ``ignore_scale`` (bool).
"""
from __future__ import annotations

import numpy as np

from . import act_quant, formats as F, gguf_io

RELU2_ARCHS = ("bitnet-b1.58", "bitnet-25")
BITNET_ARCHS = ("bitnet-b1.58", "bitnet-25", "bitnet")
SUPPORTED = BITNET_ARCHS + ("llama",)


class ReferenceModel:
    def __init__(self, path_or_file, *, dtype=np.float64, overrides=None):
        g = path_or_file if isinstance(path_or_file, gguf_io.GGUFFile) else gguf_io.read(path_or_file)
        self.g = g
        self.dt = np.dtype(dtype)
        ov = dict(overrides or {})
        arch = g.get("general.architecture")
        if arch not in SUPPORTED:
            raise ValueError(f"unsupported architecture {arch!r}")
        self.arch = arch

        def hp(key, default=None):
            v = g.get(f"{arch}.{key}", default)
            if v is None:
                raise ValueError(f"missing {arch}.{key}")
            return v

        self.n_embd = int(hp("embedding_length"))
        self.n_layer = int(hp("block_count"))
        self.n_ff = int(hp("feed_forward_length"))
        self.n_head = int(hp("attention.head_count"))
        self.n_head_kv = int(hp("attention.head_count_kv", self.n_head))
        self.eps = float(hp("attention.layer_norm_rms_epsilon"))
        self.n_ctx_train = int(hp("context_length"))
        self.head_dim = self.n_embd // self.n_head
        self.rope_base = float(hp("rope.freq_base", 10000.0))
        n_rot = int(hp("rope.dimension_count", self.head_dim))
        if n_rot != self.head_dim:
            raise ValueError("rope.dimension_count must equal head_dim")
        sc_type = g.get(f"{arch}.rope.scaling.type", "none")
        sc_factor = float(g.get(f"{arch}.rope.scaling.factor", 1.0) or 1.0)
        self.pos_scale = 1.0 / sc_factor if sc_type == "linear" and sc_factor not in (0.0, 1.0) else 1.0

        self.ffn_act = ov.get("ffn_act", "relu2" if arch in RELU2_ARCHS else "silu")
        self.rope = ov.get("rope", "norm" if arch == "llama" else "neox")
        self.sub_norms = ov.get("sub_norms", arch in BITNET_ARCHS)
        self.ignore_scale = ov.get("ignore_scale", False)

        self.n_vocab = g.tensor("token_embd.weight").shape[1]
        self._w = {}
        self.out_name = "output.weight" if (arch != "bitnet" and g.has_tensor("output.weight")) \
            else "token_embd.weight"
        freqs = np.arange(0, self.head_dim, 2, dtype=np.float64) / self.head_dim
        self.inv_freq = self.rope_base ** (-freqs)
        if g.has_tensor("rope_freqs.weight"):
            self.inv_freq = self.inv_freq / self.W("rope_freqs.weight").astype(np.float64)

    # ------------------------------------------------------------------------------------
    def W(self, name):
        if name not in self._w:
            self._w[name] = self.g.array(name).astype(self.dt)
        return self._w[name]

    def has(self, name):
        return self.g.has_tensor(name)

    def wtype(self, name):
        return self.g.tensor(name).type

    def matmul(self, x, name, emulate_act):
        """y = x @ W^T (+ bias) (* scale); x: (T, n_in)."""
        if emulate_act:
            x = act_quant.for_weight_type(self.wtype(name))(x)
        y = x @ self.W(name).T
        base = name[:-len(".weight")]
        if self.has(base + ".bias"):
            y = y + self.W(base + ".bias")
        if self.has(base + ".scale") and not self.ignore_scale:
            y = y * self.W(base + ".scale").reshape(-1)[0]
        return y

    def rmsnorm(self, x, wname):
        x = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.dt.type(self.eps))
        return x * self.W(wname)

    def apply_rope(self, x, pos):
        """x: (T, n_heads, head_dim); pos: (T,)."""
        ang = (pos.astype(np.float64) * self.pos_scale)[:, None] * self.inv_freq[None, :]
        cos = np.cos(ang).astype(self.dt)[:, None, :]
        sin = np.sin(ang).astype(self.dt)[:, None, :]
        h = self.head_dim // 2
        if self.rope == "neox":
            a, b = x[..., :h], x[..., h:]
            return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
        return out

    # ------------------------------------------------------------------------------------
    def new_cache(self):
        return {"k": [np.zeros((0, self.n_head_kv, self.head_dim), self.dt) for _ in range(self.n_layer)],
                "v": [np.zeros((0, self.n_head_kv, self.head_dim), self.dt) for _ in range(self.n_layer)],
                "n": 0}

    def forward(self, ids, cache, *, emulate_act=False, kv_f16=False):
        """Decode ``ids`` after the ``cache['n']`` tokens already in ``cache``; returns logits."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return np.zeros((0, self.n_vocab), self.dt)
        if ids.min() < 0 or ids.max() >= self.n_vocab:
            raise ValueError("token id out of range")
        T = len(ids)
        p0 = cache["n"]
        pos = np.arange(p0, p0 + T)
        nh, nkv, hd = self.n_head, self.n_head_kv, self.head_dim
        emb = self.W("token_embd.weight")
        x = emb[ids].astype(self.dt)
        for il in range(self.n_layer):
            p = f"blk.{il}."
            h = self.rmsnorm(x, p + "attn_norm.weight")
            q = self.matmul(h, p + "attn_q.weight", emulate_act).reshape(T, nh, hd)
            k = self.matmul(h, p + "attn_k.weight", emulate_act).reshape(T, nkv, hd)
            if kv_f16 and kv_f16 != "upstream" and self.has(p + "attn_v.scale") and not self.ignore_scale:
                # ik caches V without its .scale and applies the scale afterwards
                s = self.W(p + "attn_v.scale").reshape(-1)[0]
                v = self.matmul(h, p + "attn_v.weight", emulate_act) / s
                v = F.f16r(v).astype(self.dt) * s
            else:
                v = self.matmul(h, p + "attn_v.weight", emulate_act)
                if kv_f16:
                    v = F.f16r(v).astype(self.dt)
            v = v.reshape(T, nkv, hd)
            q = self.apply_rope(q, pos)
            k = self.apply_rope(k, pos)
            if kv_f16:
                k = F.f16r(k).astype(self.dt)
            K = cache["k"][il] = np.concatenate([cache["k"][il], k], 0)
            V = cache["v"][il] = np.concatenate([cache["v"][il], v], 0)
            S = K.shape[0]
            rep = nh // nkv
            Kh = np.repeat(K, rep, axis=1)              # (S, nh, hd): head h uses kv head h // rep
            Vh = np.repeat(V, rep, axis=1)
            att = np.einsum("thd,shd->hts", q, Kh) / self.dt.type(np.sqrt(hd))
            mask = np.arange(S)[None, :] > pos[:, None]
            att = np.where(mask[None], -np.inf, att)
            att = att - att.max(-1, keepdims=True)
            att = np.exp(att)
            att = att / att.sum(-1, keepdims=True)
            o = np.einsum("hts,shd->thd", att, Vh).reshape(T, nh * hd)
            if self.sub_norms:
                o = self.rmsnorm(o, p + "attn_sub_norm.weight")
            x = x + self.matmul(o, p + "attn_output.weight", emulate_act)

            h = self.rmsnorm(x, p + "ffn_norm.weight")
            gte = self.matmul(h, p + "ffn_gate.weight", emulate_act)
            up = self.matmul(h, p + "ffn_up.weight", emulate_act)
            if self.ffn_act == "relu2":
                f = np.square(np.maximum(gte, 0)) * up
            else:
                f = gte / (1 + np.exp(-gte)) * up
            if self.sub_norms:
                f = self.rmsnorm(f, p + "ffn_sub_norm.weight")
            x = x + self.matmul(f, p + "ffn_down.weight", emulate_act)
        cache["n"] = p0 + T
        x = self.rmsnorm(x, "output_norm.weight")
        return self.matmul(x, self.out_name, emulate_act)

    def logits(self, ids, emulate_act=False, kv_f16=False):
        """Teacher-forced logits of a fresh sequence: (len(ids), n_vocab)."""
        return self.forward(ids, self.new_cache(), emulate_act=emulate_act, kv_f16=kv_f16)

    def greedy(self, prompt_ids, n, emulate_act=False, kv_f16=False, return_gaps=False):
        """Decode the prompt as one batch, then ``n`` argmax steps one token at a time."""
        cache = self.new_cache()
        lg = self.forward(prompt_ids, cache, emulate_act=emulate_act, kv_f16=kv_f16)[-1]
        out, gaps = [], []
        for i in range(n):
            t1 = int(np.argmax(lg))                     # first index on ties, like argmax in C
            out.append(t1)
            gaps.append(float(lg[t1] - np.max(np.delete(lg, t1))) if len(lg) > 1 else np.inf)
            if i + 1 < n:
                lg = self.forward([out[-1]], cache, emulate_act=emulate_act, kv_f16=kv_f16)[-1]
        return (out, gaps) if return_gaps else out
