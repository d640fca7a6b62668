"""The Pyodide (browser) backend of ``bitnet``: ``bitnet.Model`` on the WebAssembly engine.

Under Pyodide (``sys.platform == "emscripten"``) ``bitnet/__init__.py`` takes
``Model`` and ``system_info`` from here instead of the cffi binding: no cffi,
no numpy, only the standard library and ``pyodide.ffi``. The engine is the
WebAssembly build (web/build.py) loaded in JavaScript by web/bitnet.js and
handed to Python as the JS module ``bitnet_wasm`` before ``import bitnet``
(web/bitnet_pyodide.mjs does both)::

    pyodide.registerJsModule("bitnet_wasm", { bn, default_model })  // bn: BitNet.load(); default_model: optional bytes

The engine keeps its own wasm memory; Python calls the bitnet.js API through
``pyodide.ffi``. The generation loop stays in wasm: ``generate``/``chat`` run
bitnet.js ``generateTokens`` with a Python callback entered once per token;
iterating ``stream``/``chat_stream`` steps the same loop one token per call
(``startGeneration``: one decode and one sample in wasm per token), since
Pyodide has no threads to run a callback loop behind an iterator. Text goes
through the package's own :class:`~bitnet._text.TextAssembler` (UTF-8 pieces,
stop strings), so the pieces are those of the native binding.

Differences from the native ``Model``: one thread (``n_threads`` is ignored),
no ``perplexity``/``eval``, ``logits`` returns a list of ``array('f')`` rows,
and chat templates fall back to the built-in ones when jinja2 is missing
(bitnet._browser_chat). A model may also be given as bytes, as a JS
``Uint8Array``/``ArrayBuffer``/array of chunks, or as a model bitnet.js has
already loaded (``await bn.loadModelFromBlob(file)`` in JS, then
``bitnet.Model(js_model)``; this object then owns and frees it).
"""

from __future__ import annotations

import os
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pyodide.ffi import JsException, JsProxy, create_proxy, to_js

from . import _browser_chat
from ._errors import BitNetError
from ._handle import OwnsHandles
from ._sampling import Sampling
from ._text import TextAssembler, normalize_stop

try:
    import bitnet_wasm as _bridge
except ImportError as _exc:
    raise ImportError(
        "bitnet under Pyodide runs on the WebAssembly engine: register it before importing bitnet, "
        'pyodide.registerJsModule("bitnet_wasm", {bn: await BitNet.load()}) (web/bitnet_pyodide.mjs installBitnet)'
    ) from _exc

import js  # noqa: E402  (Pyodide's globalThis)

TOKEN_CONTROL = 3
CHUNK = 16 * 1024 * 1024


def _bn() -> Any:
    return _bridge.bn


def engine_version() -> str:
    """The version of the wasm engine (``bitnet_version()``)."""
    return str(_bn().version)


def system_info() -> str:
    """One line: the kernel variants the loaded wasm build runs, e.g.
    ``"kernels: scalar wasm_simd (default wasm_simd); cpu: simd128"``."""
    return str(_bn().systemInfo())


def _js_object(d: Mapping[str, Any]) -> Any:
    return to_js({k: v for k, v in d.items() if v is not None}, dict_converter=js.Object.fromEntries)


def _js_bytes(data: bytes | bytearray | memoryview) -> Any:
    out = js.Uint8Array.new(len(data))
    out.assign(data)
    return out


def _error(exc: JsException) -> BitNetError:
    msg = str(exc)
    return BitNetError(msg.removeprefix("Error: "))


class _PythonProgress:
    """``progress=`` as in the native Model: True prints to stderr, a callable gets fractions."""

    def __init__(self, progress: Any, label: str) -> None:
        self.error: BaseException | None = None
        self.last = -1
        if progress is True:
            self.fn: Callable[[float], Any] | None = self._bar
        else:
            self.fn = progress if callable(progress) else None
        self.label = label

    def _bar(self, fraction: float) -> None:
        pct = int(fraction * 100)
        if pct // 10 != self.last // 10 or pct == 100:
            print(f"loading {self.label}: {pct}%", file=sys.stderr)
        self.last = pct

    def __call__(self, fraction: float) -> None:
        if self.error is None and self.fn is not None:
            try:
                self.fn(float(fraction))
            except BaseException as exc:  # re-raised after the JS call
                self.error = exc


def _model_data(source: Any) -> tuple[Any, str]:
    """(what bitnet.js loadModel takes, a name for messages)."""
    if isinstance(source, JsProxy):
        return source, "<js bytes>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source).cast("B")
        chunks = [_js_bytes(view[i : i + CHUNK]) for i in range(0, len(view), CHUNK)]
        return to_js(chunks), "<bytes>"
    path = os.fspath(source)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "model file not found", path)
    chunks = []
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            chunks.append(_js_bytes(block))
    return to_js(chunks), path


class Model(OwnsHandles):
    """``bitnet.Model`` under Pyodide (see the module docstring); the API of the native one.

    ``source``: None (the page's default model, else the embedded file),
    a GGUF path in Pyodide's file system, bytes, JS bytes, or a bitnet.js
    Model. ``kernel``: ``"auto"``, ``"wasm_simd"`` or ``"scalar"``.
    """

    _js: Any = None

    def __init__(
        self,
        source: Any = None,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        kv_type: str = "f16",
        use_mmap: bool = True,
        kernel: str | None = None,
        progress: Any = None,
    ) -> None:
        self._metadata: dict[str, Any] | None = None
        self.n_threads = 1  # Pyodide has no threads
        for name, value in (("n_ctx", n_ctx), ("n_threads", n_threads)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if kv_type not in ("f16", "f32"):
            raise ValueError(f"kv_type must be 'f16' or 'f32', got {kv_type!r}")
        if source is None:
            given = getattr(_bridge, "default_model", None)
            if given is not None:
                source = given
            else:
                from .default_model import default_model_path

                source = default_model_path()
        if isinstance(source, JsProxy) and hasattr(source, "startGeneration"):
            self._js, self.path = source, "<js model>"  # loaded by bitnet.js: taken over
        else:
            data, self.path = _model_data(source)
            watcher = _PythonProgress(progress, os.path.basename(self.path))
            on_progress = create_proxy(watcher) if watcher.fn is not None else None
            opts = _js_object({"kernel": kernel or os.environ.get("BITNET_KERNEL") or "auto", "nCtx": n_ctx or 0,
                               "kvF32": kv_type == "f32", "onProgress": on_progress})
            try:
                self._js = _bn().loadModel(data, opts)
            except JsException as exc:
                if watcher.error is not None:
                    raise watcher.error from None
                raise _error(exc) from None
            finally:
                if on_progress is not None:
                    on_progress.destroy()
            if watcher.error is not None:
                self.close()
                raise watcher.error
        self._pieces: dict[int, bytes] = {}

    # ---- lifetime --------------------------------------------------------------

    def close(self) -> None:
        """Free the model and its context in wasm memory (idempotent)."""
        if self._js is not None:
            self._js.free()
            self._js = None

    def _live(self) -> Any:
        if self._js is None:
            raise BitNetError("the model is closed", -1, "invalid argument")
        return self._js

    # ---- properties --------------------------------------------------------------

    @property
    def arch(self) -> str:
        return str(self._live().arch)

    @property
    def n_vocab(self) -> int:
        return int(self._live().nVocab)

    @property
    def n_ctx(self) -> int:
        return int(self._live().nCtx)

    @property
    def n_ctx_train(self) -> int:
        return int(self._live().nCtxTrain)

    @property
    def bos_id(self) -> int:
        return int(self._live().bos)

    @property
    def eos_id(self) -> int:
        return int(self._live().eos)

    @property
    def eot_id(self) -> int:
        return int(self._live().eot)

    @property
    def description(self) -> str:
        return str(self._live().desc)

    @property
    def kernel(self) -> str:
        """The kernel variant this model runs: ``"wasm_simd"`` or ``"scalar"``."""
        return str(self._live().kernel)

    @property
    def metadata(self) -> dict[str, Any]:
        """The GGUF key/value metadata as a dict (arrays become lists)."""
        if self._metadata is None:
            self._metadata = self._live().metadata().to_py()
        return self._metadata

    def __repr__(self) -> str:
        if self._js is None:
            return "<bitnet.Model (closed)>"
        return f"<bitnet.Model {self.description} (wasm {self.kernel})>"

    # ---- text ---------------------------------------------------------------------

    def tokenize(self, text: str | bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        """Token ids of text; ``add_bos=True`` prepends BOS when the vocabulary has one."""
        m = self._live()
        arg = _js_bytes(text) if isinstance(text, (bytes, bytearray)) else text
        try:
            return [int(i) for i in m.tokenize(arg, _js_object({"addBos": add_bos, "special": special}))]
        except JsException as exc:
            raise _error(exc) from None

    def detokenize(self, ids: Sequence[int]) -> str:
        """Text of ids (bytes that form no UTF-8 character become U+FFFD)."""
        return str(self._live().detokenize(to_js([int(i) for i in ids])))

    def _piece(self, token: int) -> bytes:
        if token not in self._pieces:
            m = self._live()
            control = int(m.tokenType(token)) == TOKEN_CONTROL
            self._pieces[token] = b"" if control else m.tokenToPiece(token).to_bytes()
        return self._pieces[token]

    def prompt_tokens(self, prompt: str | bytes) -> list[int]:
        ids = self.tokenize(prompt, add_bos=bool(self._live().addBos))
        if not ids:
            raise ValueError("the prompt is empty: it tokenizes to no tokens")
        return ids

    def _check_ids(self, ids: Sequence[int]) -> list[int]:
        out = [int(i) for i in ids]
        n_vocab = self.n_vocab
        for t in out:
            if t < 0 or t >= n_vocab:
                raise ValueError(f"token id {t} is out of range [0, {n_vocab})")
        return out

    @staticmethod
    def _js_opts(sampling: Sampling, max_tokens: int) -> dict[str, Any]:
        return {
            "maxTokens": max_tokens, "temperature": sampling.temperature, "topK": sampling.top_k,
            "topP": sampling.top_p, "minP": sampling.min_p, "repeatPenalty": sampling.repeat_penalty,
            "repeatLastN": sampling.repeat_last_n, "frequencyPenalty": sampling.frequency_penalty,
            "presencePenalty": sampling.presence_penalty, "ignoreEos": sampling.ignore_eos,
            "seed": None if sampling.seed is None else sampling.seed & 0xFFFFFFFFFFFFFFFF,
        }

    def _text_stream(self, ids: Sequence[int], max_tokens: int, stop: str | Iterable[str] | None,
                     sampling: Sampling) -> BrowserTextStream:
        tokens = self._check_ids(ids)
        if not tokens:
            raise ValueError("the prompt is empty: give at least one token id")
        if max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
        ends = set() if sampling.ignore_eos else {self.eos_id, self.eot_id} - {-1}
        assembler = TextAssembler(self._piece, normalize_stop(stop), ends)
        return BrowserTextStream(self, tokens, self._js_opts(sampling, max_tokens), assembler)

    def stream(self, prompt: str | bytes, max_tokens: int = 128, *, stop: str | Iterable[str] | None = None,
               **sampling: Any) -> BrowserTextStream:
        """Complete ``prompt``, yielding the new text in pieces (see the native ``Model.stream``)."""
        return self._text_stream(self.prompt_tokens(prompt), max_tokens, stop, Sampling.from_kwargs(sampling))

    def generate(self, prompt: str | bytes, max_tokens: int = 128, *, stop: str | Iterable[str] | None = None,
                 **sampling: Any) -> str:
        """Complete ``prompt`` and return the new text (greedy unless ``temperature > 0``)."""
        return self.stream(prompt, max_tokens, stop=stop, **sampling).read_all()

    # ---- chat ------------------------------------------------------------------------

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, list) and token < len(tokens) and isinstance(tokens[token], str):
            return tokens[token]
        return self._live().tokenToPiece(token).to_bytes().decode("utf-8", errors="replace")

    def chat_prompt(self, messages: Sequence[Mapping[str, Any]], chat_format: str | None = None) -> str:
        """The prompt text ``chat`` generates after (built-in templates when jinja2 is missing)."""
        return _browser_chat.chat_prompt(self.metadata, messages, chat_format, self._token_text(self.bos_id),
                                         self._token_text(self.eos_id))

    def chat_tokens(self, messages: Sequence[Mapping[str, Any]], chat_format: str | None = None) -> list[int]:
        """The prompt ids ``chat`` generates after (control-token text as control tokens, BOS once)."""
        ids = self.tokenize(self.chat_prompt(messages, chat_format), add_bos=False, special=True)
        bos = self.bos_id
        if self._live().addBos and bos >= 0 and (not ids or ids[0] != bos):
            ids.insert(0, bos)
        if not ids:
            raise ValueError("the chat prompt is empty")
        return ids

    def chat_stream(self, messages: Sequence[Mapping[str, Any]], max_tokens: int | None = None, *,
                    stop: str | Iterable[str] | None = None, chat_format: str | None = None,
                    **sampling: Any) -> BrowserTextStream:
        """The assistant's answer to ``messages``, in pieces (see the native ``Model.chat_stream``)."""
        ids = self.chat_tokens(messages, chat_format)
        limit = self.n_ctx if max_tokens is None else max_tokens
        return self._text_stream(ids, limit, stop, Sampling.from_kwargs(sampling))

    def chat(self, messages: Sequence[Mapping[str, Any]], max_tokens: int | None = None, *,
             stop: str | Iterable[str] | None = None, chat_format: str | None = None, **sampling: Any) -> str:
        """The assistant's answer to ``messages`` as one string."""
        return self.chat_stream(messages, max_tokens, stop=stop, chat_format=chat_format, **sampling).read_all()

    # ---- computation ---------------------------------------------------------------

    def logits(self, ids: Sequence[int]) -> list[array]:
        """Teacher-forced logits of a fresh sequence: one ``array('f')`` of
        ``n_vocab`` floats per id, row i for the token after ``ids[: i + 1]``."""
        tokens = self._check_ids(ids)
        if not tokens:
            return []
        try:
            raw = self._live().logits(to_js(tokens)).to_bytes()
        except JsException as exc:
            raise _error(exc) from None
        flat = array("f")
        flat.frombytes(raw)
        n = self.n_vocab
        return [flat[i * n : (i + 1) * n] for i in range(len(tokens))]

    def generate_tokens(self, prompt_ids: Sequence[int], max_tokens: int, *, temperature: float = 0.0,
                        seed: int | None = None, ignore_eos: bool = False, top_k: int = 40, top_p: float = 0.95,
                        min_p: float = 0.05, repeat_penalty: float = 1.0, repeat_last_n: int = 64,
                        frequency_penalty: float = 0.0, presence_penalty: float = 0.0) -> list[int]:
        """Generate up to ``max_tokens`` tokens after ``prompt_ids``; returns the new ids (loop in wasm)."""
        tokens = self._check_ids(prompt_ids)
        if not tokens:
            raise ValueError("the prompt is empty: give at least one token id")
        if max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
        sampling = Sampling(temperature, seed, ignore_eos, top_k, top_p, min_p, repeat_penalty, repeat_last_n,
                            frequency_penalty, presence_penalty)
        try:
            out = self._live().generateTokens(to_js(tokens), _js_object(self._js_opts(sampling, max_tokens)))
        except JsException as exc:
            raise _error(exc) from None
        return [int(t) for t in out]


BitNetModel = Model


class BrowserTextStream(OwnsHandles, Iterator[str]):
    """The text of one generation, in pieces: the native TextStream's interface
    (``n_tokens``, ``finish_reason``, ``prompt_seconds``, ``tokens_per_second``,
    ``read_all``, ``close``, ``with``) without a worker thread. Iterating
    steps the wasm loop one token per ``next()`` until a piece of text is
    ready; ``read_all()`` on a fresh stream runs the whole loop in wasm with a
    per-token Python callback."""

    def __init__(self, model: Model, ids: list[int], opts: dict[str, Any], assembler: TextAssembler) -> None:
        self._model = model
        self._ids = ids
        self._opts = opts
        self._assembler = assembler
        self._stepper: Any = None
        self._done = False
        self.n_prompt_tokens = len(ids)
        self.n_tokens = 0
        self.finish_reason: str | None = None
        self._t_start = self._t_first = self._t_last = 0.0

    @property
    def prompt_seconds(self) -> float:
        return max(0.0, self._t_first - self._t_start) if self.n_tokens else 0.0

    @property
    def tokens_per_second(self) -> float:
        dt = self._t_last - self._t_first
        return (self.n_tokens - 1) / dt if self.n_tokens > 1 and dt > 0 else 0.0

    def _on_token(self, token: int) -> str:
        now = time.perf_counter()
        if self.n_tokens == 0:
            self._t_first = now
        self._t_last = now
        self.n_tokens += 1
        return self._assembler.push(token)

    def _finish(self) -> str:
        a = self._assembler
        self.finish_reason = "stop" if a.stopped or a.ended else "length"
        return a.finish()

    def __iter__(self) -> BrowserTextStream:
        return self

    def __next__(self) -> str:
        while True:  # step until a token makes text final
            if self._done:
                raise StopIteration
            if self._stepper is None:
                self._t_start = time.perf_counter()
                try:
                    self._stepper = self._model._live().startGeneration(to_js(self._ids), _js_object(self._opts))
                except JsException as exc:
                    self._done = True
                    raise _error(exc) from None
            try:
                token = int(self._stepper.next())
            except JsException as exc:
                self.close()
                raise _error(exc) from None
            if token < 0:  # the loop has ended: the rest of the text
                tail = self._finish()
                self.close()
                if tail:
                    return tail
                raise StopIteration
            text = self._on_token(token)
            if self._assembler.stopped:
                self._finish()
                self.close()
            if text:
                return text

    def read_all(self) -> str:
        """The whole (remaining) text; on a fresh stream the loop runs in wasm."""
        if self._stepper is not None or self._done:
            return "".join(self)
        self._done = True
        pieces: list[str] = []
        error: list[BaseException] = []

        def on_token(token: int) -> bool:
            try:
                text = self._on_token(int(token))
                if text:
                    pieces.append(text)
                return self._assembler.stopped
            except BaseException as exc:  # re-raised once wasm has returned
                error.append(exc)
                return True

        callback = create_proxy(on_token)
        opts = _js_object({**self._opts, "onToken": callback})
        self._t_start = time.perf_counter()
        try:
            self._model._live().generateTokens(to_js(self._ids), opts)
        except JsException as exc:
            raise _error(exc) from None
        finally:
            callback.destroy()
        if error:
            raise error[0]
        pieces.append(self._finish())
        return "".join(pieces)

    def close(self) -> None:
        """Stop generating and free the stepper (the model stays usable)."""
        self._done = True
        if self._stepper is not None:
            self._stepper.free()
            self._stepper = None
