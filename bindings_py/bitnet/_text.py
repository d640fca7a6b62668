"""Token ids -> text, one token at a time: UTF-8 safe and with stop strings.

``TextAssembler`` turns each new token's bytes into the text that can be shown
now. Two things make that more than ``piece.decode()``:

- a character may be split over tokens (byte-fallback tokens, byte-level BPE):
  an incremental UTF-8 decoder holds the first bytes until the character is
  complete, so no piece ever carries half a character or a spurious U+FFFD;
- a stop string may arrive split over tokens: text that could still be the
  start of a stop string is held back until the next tokens decide. When a
  stop string completes, the text ends just before it (as OpenAI's ``stop``).

Joined, the pieces are exactly the text of all tokens decoded at once
(bytes that form no UTF-8 character become U+FFFD in both), cut at the first
stop string.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Collection, Iterable


def normalize_stop(stop: str | Iterable[str] | None) -> list[str]:
    """``stop`` as a list of non-empty strings (a single string is one stop string)."""
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    out = []
    for s in stop:
        if not isinstance(s, str):
            raise TypeError(f"stop strings must be str, got {type(s).__name__}")
        if s:  # "" would end every text before it starts; ignore it as OpenAI does
            out.append(s)
    return out


class TextAssembler:
    """Feed token ids with :meth:`push`, then call :meth:`finish` once.

    ``piece(token)`` gives a token's bytes (``bitnet_token_to_piece``). Tokens
    in ``end_tokens`` (EOS/EOT) add no text and set :attr:`ended`. After a stop
    string completes, :attr:`stopped` is True and further tokens add nothing.
    """

    def __init__(
        self,
        piece: Callable[[int], bytes],
        stop: Iterable[str] = (),
        end_tokens: Collection[int] = (),
    ) -> None:
        self._piece = piece
        self._stop = normalize_stop(list(stop))
        self._end = frozenset(end_tokens)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""  # decoded text that may be the start of a stop string
        self.stopped = False
        self.ended = False

    def push(self, token: int) -> str:
        """The text that token makes final ("" while it is still undecided)."""
        if self.stopped or self.ended:
            return ""
        if token in self._end:
            self.ended = True
            return ""
        return self._release(self._decoder.decode(self._piece(token)))

    def finish(self) -> str:
        """The rest: bytes of an unfinished character (as U+FFFD) and held-back text."""
        if self.stopped:
            return ""
        text = self._release(self._decoder.decode(b"", final=True))
        if self.stopped:
            return text
        text, self._held = text + self._held, ""
        return text

    def _release(self, new: str) -> str:
        if not new or not self._stop:
            return new
        text = self._held + new
        hits = [i for i in (text.find(s) for s in self._stop) if i >= 0]
        if hits:
            self.stopped = True
            self._held = ""
            return text[: min(hits)]
        keep = self._undecided_tail(text)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def _undecided_tail(self, text: str) -> int:
        """Length of the longest end of text that is a proper prefix of a stop string."""
        best = 0
        for s in self._stop:
            for k in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:k]):
                    best = k
                    break
        return best
