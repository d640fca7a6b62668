"""``bitnet.Model``: a GGUF model and a private context over it.

The object owns two C handles (model and context) and frees them in
``close()``, on ``with`` exit, or when garbage-collected. Calls into C release
the GIL (cffi's default in API mode); a per-model lock keeps its context to one
thread at a time, so sharing one Model between Python threads is safe.

Text in, text out: ``generate``/``stream`` (completion), ``chat``/
``chat_stream`` (messages through a chat template, bitnet.chat_templates),
``perplexity`` (bitnet.perplexity). The generation loop runs in C; see
bitnet._generation for how tokens reach Python.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

import numpy as np

from . import chat_templates
from ._errors import BitNetError
from ._generation import TextStream, generate_with_callback
from ._lib import check, ffi, lib
from ._sampling import Sampling
from ._text import TextAssembler, normalize_stop
from ._open import ModelAndContext
from ._progress import ProgressArg
from .tokenizer import detokenize_handle, text_pieces, token_to_piece_handle, tokenize_handle

PathLike = Union[str, "os.PathLike[str]"]


class Model(ModelAndContext):
    """A BitNet (or ternary LLaMA) model loaded from a GGUF file.

    >>> m = bitnet.Model("model.gguf", n_ctx=2048)
    >>> m.generate_tokens([1, 15043], max_tokens=8)

    With no path, the embedded default model (``bitnet.default_model_path()``):
    ``bitnet.Model().generate("In the beginning")``.

    ``n_ctx``: tokens the context holds (default: the model's context length,
    at most 4096). ``kv_type``: ``"f16"`` (default, as llama.cpp: half the
    memory) or ``"f32"`` (exact keys and values). ``use_mmap=False`` reads the
    file into memory instead of mapping it. ``kernel``: the kernel variant
    (``"auto"``, ``"scalar"``, ``"avx2"``, ``"avx512"``, ``"neon"``,
    ``"wasm_simd"``); None takes ``$BITNET_KERNEL``, else the default for
    this CPU (``bitnet.system_info()`` names it). A variant the CPU cannot run raises BitNetError.
    ``progress``: True for a loading bar on stderr, or a callable taking the
    fraction loaded (0 to 1); the file is read, and the bar moves, only with
    ``use_mmap=False`` (a mapped file loads in milliseconds). An exception in
    the callable cancels the load and propagates.
    """

    def __init__(
        self,
        path: PathLike | None = None,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        kv_type: str = "f16",
        use_mmap: bool = True,
        kernel: str | None = None,
        progress: ProgressArg = None,
    ) -> None:
        self._metadata: dict[str, Any] | None = None
        if path is None:
            from .default_model import default_model_path

            path = default_model_path()
        self._open(path, n_ctx=n_ctx, n_threads=n_threads, kv_type=kv_type, use_mmap=use_mmap, kernel=kernel,
                   progress=progress)
        self.n_threads = int(lib.bitnet_context_n_threads(self._ctx))  # as the engine resolved it

    # ---- lifetime ------------------------------------------------------------

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
    def eot_id(self) -> int:
        """End-of-turn id (``<|eot_id|>``, ``<|im_end|>``, ...), -1 when none;
        generation stops after it as after EOS."""
        return int(lib.bitnet_model_token_eot(self._live()))

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

    def prompt_tokens(self, prompt: str | bytes) -> list[int]:
        """The ids `generate` and `stream` start from: the text tokenized, BOS first when
        the GGUF asks for it (as llama.cpp). ValueError when it tokenizes to nothing."""
        handle = self._tokenizer()
        ids = tokenize_handle(handle, prompt, bool(lib.bitnet_tokenizer_add_bos(handle)), False)
        if not ids:
            raise ValueError("the prompt is empty: it tokenizes to no tokens")
        return ids

    def _text_stream(
        self, ids: Sequence[int], max_tokens: int, stop: str | Iterable[str] | None, sampling: Sampling
    ) -> TextStream:
        """The TextStream of generating after ids (validated here, run later)."""
        tokens = self._ids_array(ids)
        if len(tokens) == 0:
            raise ValueError("the prompt is empty: give at least one token id")
        if max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
        handle = self._tokenizer()
        sampler = sampling.make_sampler()
        ends = set() if sampling.ignore_eos else {self.eos_id, self.eot_id} - {-1}
        # Pieces, not detokenize(): a continuation keeps the space SentencePiece
        # writes as its leading "\u2581" (detokenize strips it at the start of a text).
        assembler = TextAssembler(text_pieces(handle), normalize_stop(stop), ends)

        def run(on_token: Any) -> None:
            self._live()
            generate_with_callback(self._ctx, self._lock, tokens, max_tokens, sampler, sampling.flags, on_token)

        return TextStream(run, assembler, len(tokens))

    def stream(
        self, prompt: str | bytes, max_tokens: int = 128, *, stop: str | Iterable[str] | None = None, **sampling: Any
    ) -> TextStream:
        """Complete ``prompt``, yielding the new text in pieces as it is generated.

        >>> for piece in m.stream("Once upon a time", max_tokens=64, temperature=0.8):
        ...     print(piece, end="", flush=True)

        Each piece is complete UTF-8 text: a character split over tokens comes
        out once it is whole. ``stop``: a string or strings that end the text
        (the stop string itself is not part of it); text that could begin a
        stop string is held back until it is decided. ``sampling`` takes the
        keyword arguments of :meth:`generate_tokens` (greedy by default).
        Generation stops after an end-of-text/end-of-turn token (not part of
        the text), after ``max_tokens`` tokens or when the context is full.

        The generation loop runs in C on a worker thread while the caller
        consumes pieces. Leaving early (``break``, ``close()``, an exception,
        ``with m.stream(...) as s:``) stops it at the next token; the model is
        then usable again. The returned :class:`~bitnet._generation.TextStream`
        reports ``n_tokens``, ``finish_reason`` and speed once exhausted.
        """
        return self._text_stream(self.prompt_tokens(prompt), max_tokens, stop, Sampling.from_kwargs(sampling))

    def generate(
        self, prompt: str | bytes, max_tokens: int = 128, *, stop: str | Iterable[str] | None = None, **sampling: Any
    ) -> str:
        """Complete ``prompt`` and return the new text (greedy unless ``temperature > 0``).

        The same text as joining :meth:`stream`'s pieces (``stop`` and
        ``sampling`` alike), with the loop on this thread. BOS is added when
        the GGUF asks for it; an end-of-text token ends the text and is not
        part of it. ``seed=`` makes sampled text repeatable.
        """
        return self.stream(prompt, max_tokens, stop=stop, **sampling).read_all()

    # ---- chat ---------------------------------------------------------------------

    def chat_prompt(self, messages: Sequence[Mapping[str, Any]], chat_format: str | None = None) -> str:
        """The prompt text ``chat`` generates after: messages rendered with the
        GGUF's chat template, or a built-in one (see ``bitnet.chat_templates``;
        ``chat_format``: ``"bitnet"``, ``"llama3"``, ``"chatml"``, ``"falcon3"``
        or a Jinja template), ending with the assistant's turn header."""
        meta = self.metadata
        source = chat_templates.template_source(meta, chat_format)
        return chat_templates.render(
            source,
            messages,
            bos_token=self._token_text(self.bos_id),
            eos_token=self._token_text(self.eos_id),
            add_generation_prompt=True,
        )

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, list) and token < len(tokens) and isinstance(tokens[token], str):
            return tokens[token]
        return token_to_piece_handle(self._tokenizer(), token).decode("utf-8", errors="replace")

    def chat_tokens(self, messages: Sequence[Mapping[str, Any]], chat_format: str | None = None) -> list[int]:
        """The prompt ids ``chat`` generates after: :meth:`chat_prompt` tokenized
        with control-token text as control tokens, BOS first when the GGUF asks
        for it (once, also when the template writes ``bos_token`` itself)."""
        handle = self._tokenizer()
        # Control-token text in the template (<|eot_id|>, <|im_start|>) must
        # become those tokens: tokenize with special=True.
        ids = tokenize_handle(handle, self.chat_prompt(messages, chat_format), False, True)
        bos = self.bos_id
        # BOS as for any prompt; a template that wrote bos_token already has it.
        if lib.bitnet_tokenizer_add_bos(handle) and bos >= 0 and (not ids or ids[0] != bos):
            ids.insert(0, bos)
        if not ids:
            raise ValueError("the chat prompt is empty")
        return ids

    def chat_stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        max_tokens: int | None = None,
        *,
        stop: str | Iterable[str] | None = None,
        chat_format: str | None = None,
        **sampling: Any,
    ) -> TextStream:
        """The assistant's answer to ``messages`` (OpenAI style:
        ``[{"role": "system"|"user"|"assistant", "content": "..."}]``), in
        pieces as it is generated; see :meth:`stream` and :meth:`chat_prompt`.
        It ends at the model's end-of-turn/end-of-text token, a ``stop``
        string, ``max_tokens`` (default: as many as the context holds) or a
        full context. Each call starts from an empty context with the whole
        conversation."""
        ids = self.chat_tokens(messages, chat_format)
        limit = self.n_ctx if max_tokens is None else max_tokens
        return self._text_stream(ids, limit, stop, Sampling.from_kwargs(sampling))

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        max_tokens: int | None = None,
        *,
        stop: str | Iterable[str] | None = None,
        chat_format: str | None = None,
        **sampling: Any,
    ) -> str:
        """The assistant's answer to ``messages`` as one string (see :meth:`chat_stream`).

        >>> m.chat([{"role": "user", "content": "Hello!"}], temperature=0.7)
        """
        return self.chat_stream(messages, max_tokens, stop=stop, chat_format=chat_format, **sampling).read_all()

    # ---- evaluation -----------------------------------------------------------------

    def perplexity(self, text: str | bytes, n_ctx: int | None = None, progress: bool = False) -> float:
        """Perplexity of ``text``, computed as llama.cpp's ``llama-perplexity``
        does (``bitnet.perplexity`` describes the method): chunks of ``n_ctx``
        tokens (default 512, or the context if smaller), BOS as each chunk's
        first token when the GGUF asks for BOS, the second half of each chunk
        scored. The text must have at least ``2 * n_ctx`` tokens (ValueError
        otherwise, as llama.cpp). ``progress``: a tqdm bar on stderr."""
        from .perplexity import compute_perplexity

        return compute_perplexity(self, text, n_ctx, progress).ppl

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
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
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
        sampling = Sampling(temperature, seed, ignore_eos, top_k, top_p, min_p, repeat_penalty, repeat_last_n,
                            frequency_penalty, presence_penalty)
        sampler = sampling.make_sampler()
        out = np.empty(max(max_tokens, 1), dtype=np.int32)
        n_out = ffi.new("int32_t *")
        flags = sampling.flags
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
