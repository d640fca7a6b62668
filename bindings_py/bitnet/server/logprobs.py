"""OpenAI's ``logprobs`` objects from the engine's TokenLogprob items.

/v1/completions (``"logprobs": N``)::

    {"tokens": [...], "token_logprobs": [...], "top_logprobs": [{token: logprob}, ...], "text_offset": [...]}

/v1/chat/completions (``"logprobs": true, "top_logprobs": N``)::

    {"content": [{"token": ..., "logprob": ..., "bytes": [...], "top_logprobs": [{"token", "logprob", "bytes"}]}]}

Log-probabilities are the model's (log softmax of the logits), before
temperature and the sampling filters, as llama.cpp server's
``post_sampling_probs: false``. A token's text is its piece decoded as UTF-8
(a byte of an incomplete character shows as U+FFFD; ``bytes`` has the exact
bytes); control tokens show their name, e.g. ``<|eot_id|>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .engine import TokenLogprob


def format_logprobs(items: Sequence[TokenLogprob], token_bytes: Callable[[int], bytes], *, chat: bool,
                    n_top: int, offset: int = 0) -> dict[str, Any]:
    """The ``logprobs`` member of one choice (or one streamed chunk) for ``items``;
    ``offset``: the characters of the text before the first item (streaming)."""
    def text(token: int) -> str:
        return token_bytes(token).decode("utf-8", errors="replace")

    def chat_entry(token: int, logprob: float) -> dict[str, Any]:
        raw = token_bytes(token)
        return {"token": raw.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(raw)}

    if chat:
        return {"content": [
            {**chat_entry(it.token, it.logprob), "top_logprobs": [chat_entry(t, lp) for t, lp in it.top]}
            for it in items]}
    tokens = [text(it.token) for it in items]
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [it.logprob for it in items],
        "top_logprobs": [{text(t): lp for t, lp in it.top} for it in items] if n_top > 0 else None,
        "text_offset": offsets,
    }
