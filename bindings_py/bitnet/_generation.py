"""Running the C generation loop from Python: token callbacks and text streams.

The loop itself stays in C (``bitnet_generate_tokens_cb``): prompt decode,
sampling, EOS/EOT and context-full checks, feeding each token back. Python
only sees each new token through a cffi ``extern "Python"`` callback,
``_bitnet_on_token``, and decides whether to go on.

- :func:`generate_with_callback` runs the loop on the calling thread.
  Anything the Python callback raises (including KeyboardInterrupt, which
  arrives in the callback because that is where the main thread runs Python
  code during generation) stops the loop and is re-raised once C has
  returned: nothing is swallowed, the context is left consistent.
- :class:`TextStream` runs the same loop on a worker thread and hands text
  pieces to the consumer through a queue, so that a plain ``for`` loop can
  iterate a generation whose loop is in C. Closing it (``break``, ``close()``,
  ``with``, an exception in the consumer, garbage collection) cancels the
  worker at the next token and waits for it, which leaves the model usable.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Optional

from ._handle import OwnsHandles
from ._lib import check, ffi, lib
from ._text import TextAssembler

OnToken = Callable[[int], bool]
"""Called with each new token id; return True to stop generating."""


class _CallbackState:
    __slots__ = ("on_token", "error")

    def __init__(self, on_token: OnToken) -> None:
        self.on_token = on_token
        self.error: BaseException | None = None


_orphan_errors = threading.local()  # errors raised where _bitnet_on_token could not store them


def _on_callback_error(exc_type: type, exc: BaseException, tb: Optional[TracebackType]) -> int:
    # cffi calls this for an exception that escaped _bitnet_on_token itself
    # (e.g. a KeyboardInterrupt before its try block). Keep it for
    # generate_with_callback and stop the loop: returning 0 would go on.
    _orphan_errors.error = exc
    return 1


@ffi.def_extern(onerror=_on_callback_error)
def _bitnet_on_token(user_data: Any, token: int) -> int:
    state = ffi.from_handle(user_data)
    try:
        return 1 if state.on_token(int(token)) else 0
    except BaseException as exc:  # re-raised by generate_with_callback after C returns
        state.error = exc
        return 1


def generate_with_callback(
    ctx: Any,
    lock: threading.Lock,
    prompt: Any,
    max_tokens: int,
    sampler: Any,
    flags: int,
    on_token: OnToken,
) -> None:
    """Run ``bitnet_generate_tokens_cb`` on a fresh sequence (the context is reset).

    ``prompt`` is a contiguous int32 numpy array. Raises what ``on_token``
    raised, else BitNetError on a C failure.
    """
    state = _CallbackState(on_token)
    handle = ffi.new_handle(state)  # keeps state alive for the call
    _orphan_errors.error = None
    with lock:
        lib.bitnet_context_reset(ctx)
        status = lib.bitnet_generate_tokens_cb(
            ctx,
            sampler,
            ffi.cast("int32_t *", ffi.from_buffer(prompt)),
            len(prompt),
            max_tokens,
            flags,
            lib._bitnet_on_token,
            handle,
        )
    error = state.error or getattr(_orphan_errors, "error", None)
    _orphan_errors.error = None
    if error is not None:
        raise error
    check(status)


class _End:
    pass


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = _End()


class _Generation:
    """One generation: runs the C loop and hands text to ``emit``.

    Kept apart from TextStream on purpose: the worker thread references this
    object, never the TextStream, so a stream the consumer drops (``break``
    out of a ``for``) is garbage-collected at once and its ``__del__``
    cancels the worker instead of letting it run to ``max_tokens``.
    """

    def __init__(self, run: Callable[[OnToken], None], assembler: TextAssembler) -> None:
        self.run = run
        self.assembler = assembler
        self.cancel = threading.Event()
        self.emit: Callable[[str], None] = lambda text: None
        self.n_tokens = 0
        self.finish_reason: str | None = None
        self.t_start = self.t_first = self.t_last = 0.0
        self.queue: queue.SimpleQueue[Any] | None = None
        self.thread: threading.Thread | None = None

    def on_token(self, token: int) -> bool:
        """The token callback (inside the C loop): True stops generation."""
        if self.cancel.is_set():
            return True
        now = time.perf_counter()
        if self.n_tokens == 0:
            self.t_first = now
        self.t_last = now
        self.n_tokens += 1
        text = self.assembler.push(token)
        if text:
            self.emit(text)
        return self.assembler.stopped

    def generate(self) -> None:
        """Run the whole generation on this thread."""
        self.t_start = time.perf_counter()
        self.run(self.on_token)
        self.finish_reason = "stop" if self.assembler.stopped or self.assembler.ended else "length"
        tail = self.assembler.finish()
        if tail:
            self.emit(tail)

    def start_thread(self) -> None:
        """Run the generation on a worker thread, text going to self.queue."""
        q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.queue, self.emit = q, q.put
        self.thread = threading.Thread(target=self._work, name="bitnet-stream", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        assert self.queue is not None
        try:
            self.generate()
            self.queue.put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self.queue.put(_Raised(exc))


class TextStream(OwnsHandles, Iterator[str]):
    """The text of one generation, in pieces, as it is generated.

    Returned by ``Model.stream`` and ``Model.chat_stream``; iterate it (each
    piece is complete UTF-8 text, stop strings already cut) or use it as a
    context manager. Nothing runs until the first piece is asked for; then
    the C loop runs on a worker thread, ahead of the consumer.

    After the stream is exhausted: ``n_prompt_tokens``, ``n_tokens`` (new
    tokens sampled, an EOS/EOT included), ``finish_reason`` (``"stop"``: an
    end-of-text token or a stop string; ``"length"``: ``max_tokens`` or a full
    context), ``prompt_seconds`` (prompt processing and the first token) and
    ``tokens_per_second`` (generation speed after the first token).
    """

    def __init__(self, run: Callable[[OnToken], None], assembler: TextAssembler, n_prompt_tokens: int) -> None:
        self._gen = _Generation(run, assembler)
        self._done = False
        self.n_prompt_tokens = n_prompt_tokens

    # ---- statistics -------------------------------------------------------------

    @property
    def n_tokens(self) -> int:
        """New tokens sampled so far (an ending EOS/EOT included)."""
        return self._gen.n_tokens

    @property
    def finish_reason(self) -> str | None:
        """``"stop"`` or ``"length"`` once generation has ended, else None."""
        return self._gen.finish_reason

    @property
    def prompt_seconds(self) -> float:
        """Seconds from the start to the first new token (prompt processing)."""
        g = self._gen
        return max(0.0, g.t_first - g.t_start) if g.n_tokens else 0.0

    @property
    def tokens_per_second(self) -> float:
        """New tokens per second after the first one (0.0 with fewer than two)."""
        g = self._gen
        dt = g.t_last - g.t_first
        return (g.n_tokens - 1) / dt if g.n_tokens > 1 and dt > 0 else 0.0

    # ---- consuming ----------------------------------------------------------------------

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        if self._done:
            raise StopIteration
        g = self._gen
        if g.thread is None:
            g.start_thread()
        assert g.queue is not None and g.thread is not None
        item = g.queue.get()
        if isinstance(item, str):
            return item
        self._done = True
        g.thread.join()
        if isinstance(item, _Raised):
            raise item.exc
        raise StopIteration

    def read_all(self) -> str:
        """The whole (remaining) text. Before iteration has started, the loop
        runs on this thread, without a worker thread (``Model.generate``)."""
        if self._gen.thread is not None or self._done:
            return "".join(self)
        self._done = True
        pieces: list[str] = []
        self._gen.emit = pieces.append
        self._gen.generate()
        return "".join(pieces)

    def close(self) -> None:
        """Stop generating (at the next token) and wait until the model is free."""
        self._done = True
        g = self._gen
        g.cancel.set()
        if g.thread is not None:
            g.thread.join()
