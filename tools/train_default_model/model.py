"""BitNet b1.58 in PyTorch, the `bitnet-b1.58` (BitNet-b1.58-2B-4T) architecture.

Parameter names and semantics follow Hugging Face transformers'
`BitNetForCausalLM` (model_type "bitnet"), so the saved checkpoint is what
`bitnet convert` reads for Microsoft's bf16 master-weight release:

    h = rmsnorm(x) * input_layernorm
    q, k, v = BitLinear(h); NEOX rope (rotate_half) on q, k; causal GQA attention
    x += o_proj(rmsnorm(attn) * attn_sub_norm)
    h = rmsnorm(x) * post_attention_layernorm
    x += down_proj(rmsnorm(relu(gate_proj(h))^2 * up_proj(h)) * ffn_sub_norm)
    logits = (rmsnorm(x) * norm) @ embed_tokens^T      (tied embeddings)

BitLinear is quantization-aware training as in the BitNet b1.58 papers: the
forward pass uses ternary weights `clamp(round(W / s), -1, 1) * s` with the
per-tensor absmean `s = mean|W|`, and per-token 8-bit absmax activations
`clamp(round(x * 127 / max|x|), -128, 127) * max|x| / 127`; gradients pass
straight through both roundings to the float master weights. That is the
arithmetic our engine runs on an I2_S file (docs/formats.md), so the trained
model loses nothing when exported.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Config:
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 512
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    bos_token_id: int = 0
    eos_token_id: int = 1

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def hf_config(self, name: str) -> dict:
        """config.json as transformers' BitNetConfig writes it; name becomes
        the GGUF's general.name."""
        d = asdict(self)
        d.update(
            _name_or_path=name,
            architectures=["BitNetForCausalLM"],
            model_type="bitnet",
            hidden_act="relu2",
            tie_word_embeddings=True,
            torch_dtype="float32",
            attention_bias=False,
            head_dim=self.head_dim,
        )
        return d


def quantize_weight(w: torch.Tensor) -> torch.Tensor:
    s = w.abs().mean().clamp(min=1e-5)
    return (w / s).round().clamp(-1, 1) * s


def quantize_activation(x: torch.Tensor) -> torch.Tensor:
    m = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return (x * (127.0 / m)).round().clamp(-128, 127) * (m / 127.0)


class BitLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__(n_in, n_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        wq = w + (quantize_weight(w) - w).detach()  # straight-through estimator
        xq = x + (quantize_activation(x) - x).detach()
        return F.linear(xq, wq)


class RMSNorm(nn.Module):
    def __init__(self, n: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(cfg: Config, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    inv = cfg.rope_theta ** (-torch.arange(0, cfg.head_dim, 2, dtype=torch.float64) / cfg.head_dim)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().float(), ang.sin().float()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.q_proj = BitLinear(cfg.hidden_size, cfg.num_attention_heads * hd)
        self.k_proj = BitLinear(cfg.hidden_size, cfg.num_key_value_heads * hd)
        self.v_proj = BitLinear(cfg.hidden_size, cfg.num_key_value_heads * hd)
        self.o_proj = BitLinear(cfg.num_attention_heads * hd, cfg.hidden_size)
        self.attn_sub_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        c = self.cfg
        q = self.q_proj(x).view(b, t, c.num_attention_heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = c.num_attention_heads // c.num_key_value_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        a = a.transpose(1, 2).reshape(b, t, c.num_attention_heads * c.head_dim)
        return self.o_proj(self.attn_sub_norm(a))


class MLP(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.gate_proj = BitLinear(cfg.hidden_size, cfg.intermediate_size)
        self.up_proj = BitLinear(cfg.hidden_size, cfg.intermediate_size)
        self.down_proj = BitLinear(cfg.intermediate_size, cfg.hidden_size)
        self.ffn_sub_norm = RMSNorm(cfg.intermediate_size, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.ffn_sub_norm(F.relu(self.gate_proj(x)).square() * self.up_proj(x)))


class Block(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    """`model.` in the HF names."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class BitNetForCausalLM(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = Inner(cfg)
        cos, sin = rope_tables(cfg, cfg.max_position_embeddings)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = 0.02
        for name, p in self.named_parameters():
            if p.ndim == 2:
                nn.init.normal_(p, std=std)
                if name.endswith(("o_proj.weight", "down_proj.weight")):
                    p.data.mul_(1 / math.sqrt(2 * self.cfg.num_hidden_layers))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return F.linear(self.model.norm(x), self.model.embed_tokens.weight)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
