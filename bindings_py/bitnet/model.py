"""``bitnet.Model``: a GGUF model and a private context over it.

The object owns two C handles (model and context) and frees them in
``close()``, on ``with`` exit, or when garbage-collected. Calls into C release
the GIL (cffi's default in API mode); a per-model lock keeps its context to one
thread at a time, so sharing one Model between Python threads is safe.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from ._errors import BitNetError
from ._handle import OwnsHandles
from ._lib import check, ffi, lib
from .tokenizer import detokenize_handle, token_to_piece_handle, tokenize_handle

PathLike = Union[str, "os.PathLike[str]"]


class Model(OwnsHandles):
    """A BitNet (or ternary LLaMA) model loaded from a GGUF file.

    >>> m = bitnet.Model("model.gguf", n_ctx=2048)
    >>> m.generate_tokens([1, 15043], max_tokens=8)

    ``n_ctx``: tokens the context holds (default: the model's context length,
    at most 4096). ``kv_type``: ``"f16"`` (default, as llama.cpp: half the
    memory) or ``"f32"`` (exact keys and values). ``use_mmap=False`` reads the
    file into memory instead of mapping it. ``kernel``: the kernel variant
    (``"auto"``, ``"scalar"``, ``"avx2"``, ``"avx512"``, ``"neon"``,
    ``"wasm_simd"``); None takes ``$BITNET_KERNEL``, else the default for
    this CPU (``bitnet.system_info()`` names it). A variant the CPU cannot run raises BitNetError.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        kv_type: str = "f16",
        use_mmap: bool = True,
        kernel: str | None = None,
    ) -> None:
        self._model = ffi.NULL
        self._ctx = ffi.NULL
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(errno.ENOENT, "model file not found", self.path)
        if n_ctx is not None and n_ctx <= 0:
            raise ValueError(f"n_ctx must be positive, got {n_ctx}")
        if n_threads is not None and n_threads <= 0:
            raise ValueError(f"n_threads must be positive, got {n_threads}")
        kv_types = {"f16": lib.BITNET_KV_F16, "f32": lib.BITNET_KV_F32}
        if kv_type not in kv_types:
            raise ValueError(f"kv_type must be 'f16' or 'f32', got {kv_type!r}")

        params = ffi.new("bitnet_model_params *")
        lib.bitnet_model_params_init(params)
        params.use_mmap = 1 if use_mmap else 0
        kernel_c = ffi.NULL if kernel is None else ffi.new("char[]", kernel.encode())
        params.kernel = kernel_c  # kernel_c stays referenced until the call returns
        out = ffi.new("bitnet_model **")
        check(lib.bitnet_model_load(os.fsencode(self.path), params, out))
        del kernel_c
        self._model = out[0]

        cparams = ffi.new("bitnet_context_params *")
        lib.bitnet_context_params_init(cparams)
        cparams.n_ctx = n_ctx or 0
        cparams.n_threads = n_threads or 0
        cparams.kv_type = kv_types[kv_type]
        ctx_out = ffi.new("bitnet_context **")
        status = lib.bitnet_context_create(self._model, cparams, ctx_out)
        if status != 0:
            self.close()
            check(status)
        self._ctx = ctx_out[0]
        self.n_threads = n_threads or (os.cpu_count() or 1)

    # ---- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Free the C model and context. The object is unusable afterwards."""
        if self._ctx != ffi.NULL:
            lib.bitnet_context_free(self._ctx)
            self._ctx = ffi.NULL
        if self._model != ffi.NULL:
            lib.bitnet_model_free(self._model)
            self._model = ffi.NULL

    def _live(self) -> Any:
        if self._model == ffi.NULL:
            raise BitNetError("the model is closed", -1, "invalid argument")
        return self._model

    # ---- properties ------------------------------------------------------------

    @property
    def arch(self) -> str:
        """general.architecture, e.g. ``"bitnet-b1.58"``."""
        return ffi.string(lib.bitnet_model_arch(self._live())).decode()

    @property
    def n_vocab(self) -> int:
        return int(lib.bitnet_model_n_vocab(self._live()))

    @property
    def n_ctx(self) -> int:
        """Tokens this model's context holds."""
        self._live()
        return int(lib.bitnet_context_n_ctx(self._ctx))

    @property
    def n_ctx_train(self) -> int:
        return int(lib.bitnet_model_n_ctx_train(self._live()))

    @property
    def bos_id(self) -> int:
        return int(lib.bitnet_model_token_bos(self._live()))

    @property
    def eos_id(self) -> int:
        return int(lib.bitnet_model_token_eos(self._live()))

    @property
    def description(self) -> str:
        return ffi.string(lib.bitnet_model_desc(self._live())).decode()

    @property
    def kernel(self) -> str:
        """The kernel variant this model runs: ``"scalar"``, ``"avx2"``, ..."""
        return ffi.string(lib.bitnet_model_kernel(self._live())).decode()

    @property
    def n_past(self) -> int:
        """Tokens currently held in the context (see :meth:`eval`, :meth:`reset`)."""
        self._live()
        return int(lib.bitnet_context_n_past(self._ctx))

    @property
    def metadata(self) -> dict[str, Any]:
        """The GGUF key/value metadata as a dict (arrays become lists)."""
        if self._metadata is None:
            model = self._live()
            meta: dict[str, Any] = {}
            needed = ffi.new("size_t *")
            for i in range(lib.bitnet_model_meta_count(model)):
                key = ffi.string(lib.bitnet_model_meta_key(model, i)).decode("utf-8", errors="replace")
                lib.bitnet_model_meta_json(model, i, ffi.NULL, 0, needed)
                buf = ffi.new("char[]", needed[0])
                check(lib.bitnet_model_meta_json(model, i, buf, needed[0], needed))
                meta[key] = json.loads(ffi.string(buf).decode("utf-8", errors="replace"))
            self._metadata = meta
        return self._metadata

    def __repr__(self) -> str:
        if self._model == ffi.NULL:
            return "<bitnet.Model (closed)>"
        return f"<bitnet.Model {self.description}>"

    # ---- text -----------------------------------------------------------------------

    def _tokenizer(self) -> Any:
        handle = lib.bitnet_model_tokenizer(self._live())
        if handle == ffi.NULL:
            raise BitNetError(f"{self.path}: the model file has no tokenizer", -4, "unsupported")
        return handle

    def tokenize(self, text: str | bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        """Token ids of text with the model's own tokenizer (see ``bitnet.Tokenizer``).

        ``add_bos=True`` prepends BOS when the vocabulary has one.
        """
        return tokenize_handle(self._tokenizer(), text, add_bos and self.bos_id >= 0, special)

    def detokenize(self, ids: Sequence[int]) -> str:
        """Text of ids (bytes that form no UTF-8 character become U+FFFD)."""
        return detokenize_handle(self._tokenizer(), ids)

    def generate(self, prompt: str, max_tokens: int = 128, **sampling: Any) -> str:
        """Complete ``prompt`` and return the new text (greedy unless ``temperature > 0``).

        ``sampling`` takes the keyword arguments of :meth:`generate_tokens`.
        BOS is added when the GGUF asks for it; an end-of-text token ends the
        text and is not part of it.
        """
        handle = self._tokenizer()
        add_bos = bool(lib.bitnet_tokenizer_add_bos(handle))
        ids = tokenize_handle(handle, prompt, add_bos, False)
        if not ids:
            raise ValueError("the prompt is empty: it tokenizes to no tokens")
        out = self.generate_tokens(ids, max_tokens, **sampling)
        ends = {self.eos_id, int(lib.bitnet_model_token_eot(self._model))} - {-1}
        if out and out[-1] in ends and not sampling.get("ignore_eos", False):
            out = out[:-1]
        # Pieces, not detokenize(): a continuation keeps the space SentencePiece
        # writes as its leading "\u2581" (detokenize strips it at the start of a text).
        return b"".join(token_to_piece_handle(handle, t) for t in out).decode("utf-8", errors="replace")

    # ---- computation -------------------------------------------------------------

    def _ids_array(self, ids: Sequence[int]) -> Any:
        n_vocab = self.n_vocab
        arr = np.asarray(ids, dtype=np.int64)
        if arr.ndim != 1:
            raise ValueError("token ids must be a flat sequence of ints")
        if arr.size and (arr.min() < 0 or arr.max() >= n_vocab):
            bad = int(arr[(arr < 0) | (arr >= n_vocab)][0])
            raise ValueError(f"token id {bad} is out of range [0, {n_vocab})")
        return np.ascontiguousarray(arr, dtype=np.int32)

    def reset(self) -> None:
        """Empty the context (forget the sequence :meth:`eval` built)."""
        self._live()
        with self._lock:
            lib.bitnet_context_reset(self._ctx)

    def eval(self, ids: Sequence[int]) -> None:
        """Run the model over ``ids`` placed after the tokens already in the
        context, without sampling or copying logits out (for benchmarks and
        prompt caching). On failure the context keeps its previous sequence.
        """
        tokens = self._ids_array(ids)
        if len(tokens) == 0:
            return
        with self._lock:
            check(lib.bitnet_decode(self._ctx, ffi.cast("int32_t *", ffi.from_buffer(tokens)), len(tokens), ffi.NULL))

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """Teacher-forced logits of a fresh sequence: float32, shape (len(ids), n_vocab).

        Row i holds the logits for the token after ``ids[: i + 1]``.
        """
        tokens = self._ids_array(ids)
        out = np.empty((len(tokens), self.n_vocab), dtype=np.float32)
        if len(tokens) == 0:
            return out
        with self._lock:
            lib.bitnet_context_reset(self._ctx)
            status = lib.bitnet_decode(
                self._ctx,
                ffi.cast("int32_t *", ffi.from_buffer(tokens)),
                len(tokens),
                ffi.cast("float *", ffi.from_buffer(out)),
            )
            check(status)
        return out

    def generate_tokens(
        self,
        prompt_ids: Sequence[int],
        max_tokens: int,
        *,
        temperature: float = 0.0,
        seed: int | None = None,
        ignore_eos: bool = False,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        repeat_last_n: int = 64,
    ) -> list[int]:
        """Generate up to ``max_tokens`` tokens after ``prompt_ids``; returns the new ids.

        ``temperature=0`` is greedy. Generation stops after EOS/EOT (included in
        the result) unless ``ignore_eos``, or when the context is full.
        """
        tokens = self._ids_array(prompt_ids)
        if len(tokens) == 0:
            raise ValueError("the prompt is empty: give at least one token id")
        if max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
        sp = ffi.new("bitnet_sampler_params *")
        lib.bitnet_sampler_params_init(sp)
        sp.temperature = temperature
        sp.top_k = top_k
        sp.top_p = top_p
        sp.min_p = min_p
        sp.repeat_penalty = repeat_penalty
        sp.repeat_last_n = repeat_last_n
        if seed is not None:
            sp.seed = seed & 0xFFFFFFFFFFFFFFFF
        smp_out = ffi.new("bitnet_sampler **")
        check(lib.bitnet_sampler_create(sp, smp_out))
        sampler = ffi.gc(smp_out[0], lib.bitnet_sampler_free)
        out = np.empty(max(max_tokens, 1), dtype=np.int32)
        n_out = ffi.new("int32_t *")
        flags = lib.BITNET_GENERATE_IGNORE_EOS if ignore_eos else 0
        with self._lock:
            lib.bitnet_context_reset(self._ctx)
            check(
                lib.bitnet_generate_tokens(
                    self._ctx,
                    sampler,
                    ffi.cast("int32_t *", ffi.from_buffer(tokens)),
                    len(tokens),
                    max_tokens,
                    flags,
                    ffi.cast("int32_t *", ffi.from_buffer(out)),
                    n_out,
                )
            )
        return [int(t) for t in out[: n_out[0]]]


BitNetModel = Model
