"""The continuous-batching scheduler: many requests, one model, one thread.

N slots are the N sequences of one ``BatchContext``. A single engine thread
loops:

1. drop cancelled requests (a client that went away) and free their slots;
2. admit waiting requests into free slots (first come, first served);
3. run ONE ``decode`` for every busy slot together: a newly admitted slot
   contributes its prompt, at most ``prefill_chunk`` tokens per step (so a
   long prompt does not stall the other streams for one long step; logits
   only for the prompt's last token), every other slot the one token it
   sampled last step;
4. sample each slot's next token with that request's own C sampler, turn it
   into text (``TextAssembler``: UTF-8 safe pieces, stop strings, control
   tokens hidden) and hand the text to the request's asyncio queue with
   ``loop.call_soon_threadsafe`` (asyncio queues are not thread-safe).

Requests join and leave between steps, so a short request never waits for a
long one to end. Because ``bitnet_decode_batch`` is bit-identical to decoding
each sequence alone, and the stopping rules below are those of the C
generation loop (``generate_loop`` in bindings_c/src/api.c), a request's
greedy output is exactly ``Model.generate(prompt, temperature=0)``'s.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Union

import numpy as np

from .._lib import ffi, lib
from .._sampling import Sampling
from .._text import TextAssembler
from ..batch import BatchContext
from ..model import Model
from ..tokenizer import text_pieces, token_to_piece_handle
from .metrics import ServerMetrics


@dataclass(frozen=True)
class Finished:
    """The last item of a request's queue. ``reason``: "stop" (end token or
    stop string), "length" (max_tokens or a full context), "cancelled" or
    "error" (``error`` says why)."""

    reason: str
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """A sampled token's log-probability under the model (softmax of its
    logits, before temperature and filters) and the ``top`` most likely
    tokens' as (token id, log-probability), for requests that ask for
    logprobs. Queued before the text the token adds."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...]


Item = Union[str, Finished, TokenLogprob]


class QueueFull(Exception):
    """Every slot is busy and the waiting queue is at its limit."""


class Retired(Exception):
    """The engine serves an older file that has been reloaded: it finishes
    what it has but takes no new request."""


class Request:
    """One generation: prompt ids in, text pieces and then a Finished out (on ``queue``).

    Created on the event loop's thread; the engine thread only calls
    :meth:`_emit` and reads :attr:`cancelled`.
    """

    def __init__(
        self, prompt_ids: list[int], max_tokens: int, sampling: Sampling, stop: list[str],
        loop: asyncio.AbstractEventLoop, top_logprobs: int | None = None,
    ) -> None:
        self.prompt_ids = prompt_ids
        self.top_logprobs = top_logprobs  # None: no logprobs; else how many alternatives
        self.max_tokens = max_tokens
        self.sampling = sampling
        self.stop = stop
        self.loop = loop
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.t_submit = time.perf_counter()
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """The client is gone: the engine frees the slot at its next step."""
        self._cancelled.set()

    def _emit(self, item: Item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: the server is shutting down
            pass


class _Slot:
    """A busy slot: its request and the state of its generation."""

    def __init__(self, req: Request, assembler: TextAssembler) -> None:
        self.req = req
        self.sampler = req.sampling.make_sampler()
        self.assembler = assembler
        self.pending: list[int] = list(req.prompt_ids)  # tokens the next step decodes
        self.n_generated = 0
        self.t_last = 0.0
        for t in req.prompt_ids:  # as the C loop: the repetition penalty sees the prompt
            lib.bitnet_sampler_accept(self.sampler, t)


def token_logprob(row: np.ndarray, token: int, n_top: int) -> TokenLogprob:
    """log softmax(row) at ``token``, and its ``n_top`` best (ties: lower id first)."""
    peak = float(row.max())
    lse = peak + float(np.log(np.exp((row - peak).astype(np.float64)).sum()))
    top: tuple[tuple[int, float], ...] = ()
    if n_top > 0:
        best = np.argpartition(-row, min(n_top, len(row) - 1))[:n_top]
        best = sorted(best.tolist(), key=lambda t: (-row[t], t))
        top = tuple((int(t), float(row[t]) - lse) for t in best)
    return TokenLogprob(token, float(row[token]) - lse, top)


class Engine:
    """One model, ``n_slots`` sequences of ``n_ctx`` tokens each, one engine thread.

    ``model`` (a small-context ``bitnet.Model`` over the same file; mmap
    shares the weights) serves tokenizing, chat templates and metadata;
    ``batch`` does all the generating.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_slots: int,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        kernel: str | None = None,
        max_queue: int = 64,
        metrics: ServerMetrics | None = None,
        labels: tuple[str, str] = ("model", "default"),
        prefill_chunk: int = 256,
    ) -> None:
        self.model = Model(path, n_ctx=8, n_threads=1, kernel=kernel)
        # The server answers text: a GGUF without a vocabulary cannot be served (refused here,
        # reported by /health), rather than failing inside the engine thread later.
        try:
            self._tokenizer = self.model._tokenizer()
        except Exception:
            self.model.close()
            raise
        self.batch = BatchContext(path, n_seq=n_slots, n_ctx=n_ctx, n_threads=n_threads, kernel=kernel)
        self.n_slots = n_slots
        self.n_ctx = self.batch.n_ctx
        self.n_vocab = self.batch.n_vocab
        self.max_queue = max_queue
        self.prefill_chunk = max(1, prefill_chunk)
        self.metrics = metrics or ServerMetrics()
        # Several engines (models, variants, a reloaded file next to the old
        # one) share the app's gauges: each adds what it holds and takes it
        # back when it closes; its own series carry (model, variant) labels.
        self._held = {"queue": 0, "busy": 0}
        self._by_model = {"queue": self.metrics.model_queue_depth.labels(*labels),
                          "busy": self.metrics.model_busy_slots.labels(*labels)}
        self._generated = self.metrics.model_generated_tokens.labels(*labels)
        self._ttft = self.metrics.model_time_to_first_token.labels(*labels)
        self._tpot = self.metrics.model_time_per_output_token.labels(*labels)
        self.metrics.slots.inc(n_slots)
        self._ends = {self.model.eos_id, self.model.eot_id} - {-1}
        self._piece = text_pieces(self._tokenizer)  # engine thread only
        self._token_out = ffi.new("int32_t *")
        self._slots: list[_Slot | None] = [None] * n_slots
        self._waiting: deque[Request] = deque()
        self._cond = threading.Condition()
        self._running = True
        self._paused = False
        self._retired = False
        self._thread = threading.Thread(target=self._run, name="bitnet-engine", daemon=True)
        self._thread.start()

    # ---- the event loop's side -------------------------------------------------------

    def submit(self, req: Request) -> None:
        """Queue a request; QueueFull when the waiting queue is at ``max_queue``."""
        with self._cond:
            if self._retired:
                raise Retired
            if len(self._waiting) >= self.max_queue:
                raise QueueFull
            self._waiting.append(req)
            self._show("queue", len(self._waiting))
            self._cond.notify()

    def retire(self) -> None:
        """Take no new request (Retired); the ones already here go on."""
        with self._cond:
            self._retired = True

    @property
    def idle(self) -> bool:
        """Nothing waiting, nothing generating."""
        with self._cond:
            return not self._waiting and not any(self._slots)

    def _show(self, kind: str, value: int) -> None:
        total = self.metrics.queue_depth if kind == "queue" else self.metrics.busy_slots
        total.inc(value - self._held[kind])
        self._by_model[kind].inc(value - self._held[kind])
        self._held[kind] = value

    def pause(self) -> None:
        """Hold the engine between steps (requests wait, nothing is lost):
        for draining and for tests that need a request to stay in flight."""
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify()

    def close(self) -> None:
        """Stop the thread, end every request with an error, free the model."""
        with self._cond:
            self._running = False
            self._cond.notify()
        self._thread.join()
        for i, slot in enumerate(self._slots):
            if slot is not None:
                self._finish(i, "error", "the server is shutting down")
        while self._waiting:
            req = self._waiting.popleft()
            req._emit(Finished("error", len(req.prompt_ids), 0, "the server is shutting down"))
        self._show("queue", 0)
        self._show("busy", 0)
        self.metrics.slots.dec(self.n_slots)
        self.batch.close()
        self.model.close()

    # ---- the engine thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._running and (self._paused or (not self._waiting and not any(self._slots))):
                    self._cond.wait()
                if not self._running:
                    return
                self._admit()
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - a bug must not kill the thread and hang every request
                for i, slot in enumerate(self._slots):
                    if slot is not None:
                        self._finish(i, "error", f"internal error: {type(exc).__name__}: {exc}")

    def _admit(self) -> None:
        """Move waiting requests into free slots (under the lock)."""
        while self._waiting and None in self._slots:
            req = self._waiting.popleft()
            if req.cancelled:
                req._emit(Finished("cancelled", len(req.prompt_ids), 0))
                continue
            i = self._slots.index(None)
            assembler = TextAssembler(self._piece, req.stop, set() if req.sampling.ignore_eos else self._ends)
            self._slots[i] = _Slot(req, assembler)
            self.metrics.prompt_tokens.inc(len(req.prompt_ids))
            if req.max_tokens == 0:  # as the C loop: nothing to sample
                self._finish(i, "length")
        self._show("queue", len(self._waiting))
        self._show("busy", sum(s is not None for s in self._slots))

    def token_bytes(self, token: int) -> bytes:
        """A token's bytes, control tokens' names included (for logprobs; any thread)."""
        return token_to_piece_handle(self._tokenizer, token)

    def _step(self) -> None:
        """One forward pass over every busy slot, then one sampled token each."""
        tokens: list[int] = []
        seq_ids: list[int] = []
        want: list[int] = []
        order: list[int] = []
        prefilling: list[int] = []
        for i, slot in enumerate(self._slots):
            if slot is None:
                continue
            if slot.req.cancelled:
                self._finish(i, "cancelled")
                continue
            n = min(len(slot.pending), self.prefill_chunk)
            last = n == len(slot.pending)  # this step ends what the slot had to decode: sample after it
            tokens += slot.pending[:n]
            seq_ids += [i] * n
            want += [0] * (n - 1) + [int(last)]
            if last:
                order.append(i)
            else:
                prefilling.append(i)
        if not tokens:
            return
        try:
            rows = self.batch.decode(tokens, seq_ids, want)
        except Exception as exc:  # noqa: BLE001 - reported to each request, the engine goes on
            for i in order + prefilling:
                self._finish(i, "error", str(exc))
            return
        for i in prefilling:  # the rest of their prompts next step
            slot = self._slots[i]
            assert slot is not None
            slot.pending = slot.pending[self.prefill_chunk:]
        now = time.perf_counter()
        for row, i in zip(rows, order):
            slot = self._slots[i]
            assert slot is not None
            slot.pending = []
            status = lib.bitnet_sampler_sample(
                slot.sampler, ffi.cast("float *", ffi.from_buffer(row)), self.n_vocab, self._token_out)
            if status != 0:
                self._finish(i, "error", "sampling failed")
                continue
            token = int(self._token_out[0])
            lib.bitnet_sampler_accept(slot.sampler, token)
            if slot.req.top_logprobs is not None:
                slot.req._emit(token_logprob(row, token, slot.req.top_logprobs))
            slot.n_generated += 1
            if slot.n_generated == 1:
                self.metrics.time_to_first_token.observe(now - slot.req.t_submit)
                self._ttft.observe(now - slot.req.t_submit)
            else:
                self.metrics.time_per_output_token.observe(now - slot.t_last)
                self._tpot.observe(now - slot.t_last)
            slot.t_last = now
            self.metrics.generated_tokens.inc()
            self._generated.inc()
            text = slot.assembler.push(token)
            if text:
                slot.req._emit(text)
            # The C generation loop's order of checks: end token or stop
            # string, then max_tokens, then a full context.
            if slot.assembler.stopped or slot.assembler.ended:
                self._finish(i, "stop")
            elif slot.n_generated >= slot.req.max_tokens or self.batch.seq_length(i) >= self.n_ctx:
                self._finish(i, "length")
            else:
                slot.pending = [token]

    def _finish(self, i: int, reason: str, error: str | None = None) -> None:
        """End slot i's request and free the slot for the next one."""
        slot = self._slots[i]
        assert slot is not None
        if reason in ("stop", "length"):
            rest = slot.assembler.finish()
            if rest:
                slot.req._emit(rest)
        slot.req._emit(Finished(reason, len(slot.req.prompt_ids), slot.n_generated, error))
        self.batch.seq_reset(i)
        self._slots[i] = None
        self.metrics.finished.labels(reason).inc()
        self._show("busy", sum(s is not None for s in self._slots))
