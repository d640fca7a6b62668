"""Perplexity of a text, computed the way llama.cpp's ``llama-perplexity`` does.

The method (llama.cpp ``tools/perplexity/perplexity.cpp``, ``perplexity()``):

1. Tokenize the whole text, with BOS in front when the GGUF asks for it
   (``tokenizer.ggml.add_bos_token``), control-token text left as text.
2. Cut the tokens into ``n_chunk = len(tokens) // n_ctx`` chunks of ``n_ctx``
   tokens; the rest is dropped. llama.cpp refuses a text of fewer than
   ``2 * n_ctx`` tokens, and so do we (ValueError), so that numbers are
   computed on the same inputs.
3. When the GGUF asks for BOS, each chunk's first token is replaced by BOS.
4. Each chunk is evaluated on an empty context. Only the second half is
   scored, so that every scored token has at least ``n_ctx / 2`` tokens of
   context: with ``first = n_ctx // 2``, the logits after positions
   ``first .. n_ctx - 2`` predict tokens ``first + 1 .. n_ctx - 1``, which
   is ``n_ctx - 1 - first`` tokens per chunk.
5. ``ppl = exp(sum of -log softmax(logits)[target] / number scored)``.

Perplexities of models with different vocabularies do not compare: a token
is a different amount of text. Bits per byte do: the same sum of negative
log-likelihoods, in bits, over the UTF-8 bytes of the scored tokens' text
(control tokens such as BOS have none).

The log-softmax is taken in float64 here (llama.cpp sums exponentials in
double after a float max-shift); the difference is far below the printed
digits.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._lib import check, ffi, lib
from .tokenizer import text_pieces, tokenize_handle

if TYPE_CHECKING:
    from .model import Model

DEFAULT_N_CTX = 512  # llama-perplexity's default -c
_LOGITS_BUDGET = 32 << 20  # bytes of float32 logits held at once


@dataclass(frozen=True)
class PerplexityResult:
    """What one perplexity run measured."""

    ppl: float
    n_ctx: int  # tokens per chunk
    n_chunks: int  # chunks evaluated
    n_tokens: int  # tokens of the whole text (BOS included when added)
    n_scored: int  # tokens whose probability entered the mean
    nll: float  # mean negative log-likelihood, ln(ppl)
    scored_bytes: int  # UTF-8 bytes of the scored tokens' text
    bits_per_byte: float  # n_scored * nll / ln(2) / scored_bytes: compares across vocabularies


def log_softmax_nll(logits: np.ndarray, targets: np.ndarray) -> float:
    """Sum over rows of -log softmax(logits[i])[targets[i]], in float64."""
    x = logits.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
    return float((lse - x[np.arange(len(targets)), targets]).sum())


def _chunk_nll(model: Model, chunk: np.ndarray, first: int) -> float:
    """Decode one chunk on an empty context and score its second half."""
    n_ctx, n_vocab = len(chunk), model.n_vocab
    rows = max(1, min(n_ctx, _LOGITS_BUDGET // (4 * n_vocab)))
    logits = np.empty((rows, n_vocab), dtype=np.float32)
    logits_ptr = ffi.cast("float *", ffi.from_buffer(logits))
    nll = 0.0
    with model._lock:
        ctx = model._ctx
        lib.bitnet_context_reset(ctx)
        # The first half only builds the KV cache: no logits are copied out.
        check(lib.bitnet_decode(ctx, ffi.cast("int32_t *", ffi.from_buffer(chunk)), first, ffi.NULL))
        # Logits after positions first .. n_ctx-2 predict tokens first+1 .. n_ctx-1;
        # the last token is never decoded, as it predicts nothing scored.
        for start in range(first, n_ctx - 1, rows):
            n = min(rows, n_ctx - 1 - start)
            part = chunk[start : start + n]
            check(lib.bitnet_decode(ctx, ffi.cast("int32_t *", ffi.from_buffer(part)), n, logits_ptr))
            nll += log_softmax_nll(logits[:n], chunk[start + 1 : start + 1 + n])
    return nll


def compute_perplexity(
    model: Model, text: str | bytes, n_ctx: int | None = None, progress: bool = False
) -> PerplexityResult:
    """Perplexity of ``text`` under ``model`` with llama-perplexity's method
    (module docstring). ``n_ctx``: tokens per chunk, default 512 or the
    model's context if smaller; at most the model's context. ``progress``:
    a tqdm bar on stderr, one step per chunk."""
    if n_ctx is None:
        n_ctx = min(DEFAULT_N_CTX, model.n_ctx)
    if n_ctx < 3:  # the second half of a chunk must score at least one token
        raise ValueError(f"n_ctx must be at least 3, got {n_ctx}")
    if n_ctx > model.n_ctx:
        raise ValueError(f"n_ctx {n_ctx} is larger than the model's context ({model.n_ctx}): "
                         f"open the Model with n_ctx={n_ctx} or more")
    handle = model._tokenizer()
    add_bos = bool(lib.bitnet_tokenizer_add_bos(handle))
    tokens = np.asarray(tokenize_handle(handle, text, add_bos, False), dtype=np.int32)
    if len(tokens) < 2 * n_ctx:
        raise ValueError(f"perplexity with n_ctx={n_ctx} needs a text of at least {2 * n_ctx} tokens "
                         f"(as llama-perplexity), this one has {len(tokens)}: use a longer text or a smaller n_ctx")
    n_chunks = len(tokens) // n_ctx
    first = n_ctx // 2
    bos = int(lib.bitnet_tokenizer_bos(handle))
    bar = _progress_bar(n_chunks) if progress else None
    piece = text_pieces(handle)
    nll = 0.0
    n_scored = 0
    scored_bytes = 0
    try:
        for i in range(n_chunks):
            chunk = tokens[i * n_ctx : (i + 1) * n_ctx].copy()
            if add_bos:
                chunk[0] = bos
            nll += _chunk_nll(model, chunk, first)
            n_scored += n_ctx - 1 - first
            scored_bytes += sum(len(piece(int(t))) for t in chunk[first + 1 :])
            if bar is not None:
                bar.set_postfix_str(f"ppl {math.exp(nll / n_scored):.4f}", refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    mean = nll / n_scored
    bpb = nll / math.log(2) / scored_bytes if scored_bytes else math.inf
    return PerplexityResult(math.exp(mean), n_ctx, n_chunks, len(tokens), n_scored, mean, scored_bytes, bpb)


def _progress_bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="chunk", desc="perplexity", file=sys.stderr, dynamic_ncols=True)
