"""A tiny model whose greedy output is written in advance: a Markov chain on tokens.

    path = scripted_model(tmp_path / "m.gguf", {B("u"): B(0xC3), B(0xC3): B(0xA9), ...}, default_next=450)

The model is the factory's float ``llama`` model (SentencePiece vocabulary
with byte tokens: id ``B(b) = 3 + b`` stands for byte b, id 259+ for " tN")
rewired so that its next token depends on the current token only:

- every layer's attention output and FFN down projection are zero, so the
  residual stream after the last layer is the token's embedding;
- scripted tokens (the keys of ``chain``) get random unit embeddings
  orthogonal to e0; every other token embeds close to e0;
- the output row of ``chain[t]`` is ``ALPHA * u_t`` (summed over the tokens
  that lead to it), the row of ``default_next`` is ``ALPHA * e0``.

So after token t the logit of ``chain[t]`` (or of ``default_next``) is
about 20 and every other logit is within a few units of 0: greedy decoding,
and sampling at moderate temperatures too, follow the chain. Tokens in
``special`` get new texts (control tokens such as ``<|eot_id|>``).
Nothing here imports the engine.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import formats as F
from . import gguf_io as G
from .model_factory import build

LOGIT = 20.0  # logit of the scripted next token (norm of the final hidden state is sqrt(n_embd))
CONTROL = 3  # GGUF token type of control tokens


def B(byte: int | str) -> int:
    """The id of the byte-fallback token of one byte (or of a one-byte character)."""
    return 3 + (ord(byte) if isinstance(byte, str) else byte)


def chain_of(*ids: int) -> dict[int, int]:
    """{ids[0]: ids[1], ids[1]: ids[2], ...}"""
    return {a: b for a, b in zip(ids, ids[1:])}


def scripted_model(
    path: str | os.PathLike[str],
    chain: dict[int, int],
    default_next: int,
    *,
    special: dict[int, str] | None = None,
    add_bos: bool = False,
    extra_kv: dict[str, G.KV] | None = None,
    seed: int = 7,
) -> Path:
    g = build(family="llama", wtype="F32", emb_type="F32", seed=seed)
    kv = g.kv
    vocab_kv = kv["tokenizer.ggml.tokens"]
    types_kv = kv["tokenizer.ggml.token_type"]
    for tid, text in (special or {}).items():
        vocab_kv.value[tid] = text
        types_kv.value[tid] = CONTROL
    kv["tokenizer.ggml.add_bos_token"] = G.kv_bool(add_bos)
    for key, value in (extra_kv or {}).items():
        kv[key] = value

    tensors = {t.name: t for t in g.tensors}
    n_vocab, n_embd = tensors["token_embd.weight"].shape[1], tensors["token_embd.weight"].shape[0]
    rng = np.random.default_rng(seed)

    def unit_orthogonal_to_e0(n: int, scale: float = 1.0) -> np.ndarray:
        x = rng.standard_normal((n, n_embd))
        x[:, 0] = 0.0
        return scale * x / np.linalg.norm(x, axis=1, keepdims=True)

    emb = np.zeros((n_vocab, n_embd))
    emb[:, 0] = 1.0
    emb += unit_orthogonal_to_e0(n_vocab, 0.3)  # unscripted: mostly e0
    keys = sorted(chain)
    u = unit_orthogonal_to_e0(len(keys))
    emb[keys] = u
    alpha = LOGIT / np.sqrt(n_embd)  # the final RMSNorm scales the hidden state to norm sqrt(n_embd)
    out = np.zeros((n_vocab, n_embd))
    for k, t in enumerate(keys):
        out[chain[t]] += alpha * u[k]
    out[default_next, 0] += alpha

    def put(name: str, arr: np.ndarray) -> None:
        t = tensors[name]
        t.data = F.encode("F32", np.asarray(arr, dtype=np.float64).reshape(tuple(reversed(t.shape))))

    put("token_embd.weight", emb)
    put("output.weight", out)
    put("output_norm.weight", np.ones(n_embd))
    for name, t in tensors.items():
        if name.endswith(("attn_output.weight", "ffn_down.weight")):
            put(name, np.zeros(tuple(reversed(t.shape))))
    path = Path(path)
    g.write(path)
    return path


# ---- the script the API and CLI tests share -----------------------------------------------

EOS, EOT = 2, 500
SPECIAL = {EOT: "<|eot_id|>", 501: "<|im_start|>", 502: "<|im_end|>"}
UTF8_PROMPT = "u"  # -> é, " t301", €, 😀, " t302", EOS: each character split over byte tokens
UTF8_PIECES = ["é", " t301", "€", "😀", " t302"]
STOP_PROMPT = "s"  # -> " t311" ... " t315", EOS
STOP_TEXT = " t311 t312 t313 t314 t315"
LOOP_PROMPT = "c"  # -> " t400 t401 t402 t403", repeated forever
LOOP_TEXT = " t400 t401 t402 t403"
ANSWER = " t450 t451 t452"  # after any other last token (a chat prompt's), then EOT


def demo_chain() -> dict[int, int]:
    chain: dict[int, int] = {}
    chain.update(chain_of(B(UTF8_PROMPT), B(0xC3), B(0xA9), 301, B(0xE2), B(0x82), B(0xAC),
                          B(0xF0), B(0x9F), B(0x98), B(0x80), 302, EOS))
    chain.update(chain_of(B(STOP_PROMPT), 311, 312, 313, 314, 315, EOS))
    chain.update(chain_of(B(LOOP_PROMPT), 400, 401, 402, 403, 400))
    chain.update(chain_of(450, 451, 452, EOT))
    return chain


def demo_model(path: str | os.PathLike[str], **kw: object) -> Path:
    """The shared script; keyword arguments as :func:`scripted_model` (special, add_bos, extra_kv)."""
    kw.setdefault("special", SPECIAL)
    return scripted_model(path, demo_chain(), 450, **kw)  # type: ignore[arg-type]
