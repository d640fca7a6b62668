"""``bitnet.batch.BatchContext``: several sequences decoded together.

A thin binding of ``bitnet_decode_batch`` for a server's continuous batching:
each step hands the engine one token (or a prompt's tokens) per active
sequence, and all of them run in one forward pass, so the weights are read
once per step for every sequence. Sampling, stop conditions and scheduling
stay with the caller.

    >>> with BatchContext("model.gguf", n_seq=4, n_ctx=2048) as b:
    ...     rows = b.decode([1, 15043, 1], [0, 0, 1], want_logits=[0, 1, 1])
    ...     rows.shape            # (2, n_vocab): item 1 (seq 0), item 2 (seq 1)

The object owns its own model handle and context (with mmap the weights'
pages are shared with any other Model over the same file), so its lifetime
is independent of any ``bitnet.Model``. A lock keeps the context to one
thread at a time, as the C API requires.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._errors import BitNetError
from ._open import ModelAndContext
from ._lib import check, ffi, lib


class BatchContext(ModelAndContext):
    """``n_seq`` sequences over one model, each with its own KV cache of
    ``n_ctx`` tokens (memory: ``n_seq`` times a one-sequence context).
    ``n_batch``: items per forward pass (default 512; longer batches are
    split, with the same results). Other options as ``bitnet.Model``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        n_seq: int,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_batch: int | None = None,
        kv_type: str = "f16",
        kernel: str | None = None,
    ) -> None:
        self._open(path, n_ctx=n_ctx, n_threads=n_threads, kv_type=kv_type, kernel=kernel, n_batch=n_batch,
                   n_seq=n_seq)
        self.n_vocab = int(lib.bitnet_model_n_vocab(self._model))

    def _live(self) -> Any:
        if self._ctx == ffi.NULL:
            raise BitNetError("the batch context is closed", -1, "invalid argument")
        return self._ctx

    @property
    def n_seq(self) -> int:
        return int(lib.bitnet_context_n_seq_max(self._live()))

    @property
    def n_ctx(self) -> int:
        """Tokens each sequence holds."""
        return int(lib.bitnet_context_n_ctx(self._live()))

    def seq_length(self, seq_id: int) -> int:
        """Tokens held by sequence ``seq_id``."""
        n = int(lib.bitnet_seq_length(self._live(), seq_id))
        if n < 0:
            raise IndexError(f"sequence id {seq_id} is out of range [0, {self.n_seq})")
        return n

    def seq_reset(self, seq_id: int) -> None:
        """Empty one sequence (free its slot for a new request)."""
        ctx = self._live()
        with self._lock:
            check(lib.bitnet_seq_reset(ctx, seq_id))

    def reset(self) -> None:
        """Empty every sequence."""
        ctx = self._live()
        with self._lock:
            lib.bitnet_context_reset(ctx)

    def decode(
        self, tokens: Sequence[int], seq_ids: Sequence[int], want_logits: Sequence[int] | None = None
    ) -> np.ndarray:
        """Append ``tokens[i]`` to sequence ``seq_ids[i]`` for every i, in one
        batch (items of one sequence in order). Returns float32 logits of
        shape (rows, n_vocab): one row per item with a true ``want_logits``
        entry (every item when None), in item order. On error (BitNetError,
        naming the item) no sequence changes."""
        ctx = self._live()
        tok = np.ascontiguousarray(tokens, dtype=np.int32).reshape(-1)
        seq = np.ascontiguousarray(seq_ids, dtype=np.int32).reshape(-1)
        if len(tok) != len(seq):
            raise ValueError(f"{len(tok)} tokens but {len(seq)} sequence ids")
        if want_logits is None:
            want = None
            n_rows = len(tok)
        else:
            want = np.ascontiguousarray(want_logits, dtype=np.int8).reshape(-1) != 0
            if len(want) != len(tok):
                raise ValueError(f"{len(tok)} tokens but {len(want)} want_logits flags")
            want = want.astype(np.int8)
            n_rows = int(want.sum())
        out = np.empty((n_rows, self.n_vocab), dtype=np.float32)
        if len(tok) == 0:
            return out
        with self._lock:
            check(
                lib.bitnet_decode_batch(
                    ctx,
                    ffi.cast("int32_t *", ffi.from_buffer(tok)),
                    ffi.cast("int32_t *", ffi.from_buffer(seq)),
                    ffi.NULL if want is None else ffi.cast("int8_t *", ffi.from_buffer(want)),
                    len(tok),
                    ffi.cast("float *", ffi.from_buffer(out)) if n_rows else ffi.NULL,
                )
            )
        return out
