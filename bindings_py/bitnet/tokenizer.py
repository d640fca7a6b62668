"""``bitnet.Tokenizer``: the C tokenizer of a GGUF file (bitnet.h section 5).

    >>> tok = bitnet.Tokenizer("model.gguf")      # vocab-only GGUFs work too
    >>> ids = tok.tokenize("Hello world")          # [9906, 1917]
    >>> tok.detokenize(ids)
    'Hello world'

Byte-level BPE ("gpt2" GGUFs: LLaMA-3, BitNet-b1.58-2B-4T, Qwen2, GPT-2, ...)
and SentencePiece BPE ("llama" GGUFs: LLaMA-2, the 1bitLLM models), identical
to Hugging Face ``tokenizers``. The object owns its C handle and frees it in
``close()``, on ``with`` exit, or when garbage-collected; calls release the GIL
and one Tokenizer may be shared between threads.

``tokenize_handle``/``detokenize_handle`` do the work on a raw
``const bitnet_tokenizer *`` so that ``bitnet.Model`` can use the tokenizer its
model owns (``lib.bitnet_model_tokenizer``) with the same behaviour.
"""

from __future__ import annotations

import codecs
import errno
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Union

from ._errors import BitNetError
from ._handle import OwnsHandles
from ._lib import check, ffi, lib, status_name

PathLike = Union[str, "os.PathLike[str]"]

_BUFFER_TOO_SMALL = lib.BITNET_ERR_BUFFER_TOO_SMALL


def _tok_error(handle: Any, status: int) -> BitNetError:
    msg = ffi.string(lib.bitnet_tokenizer_last_error(handle)).decode("utf-8", errors="replace")
    return BitNetError(msg or status_name(status), status, status_name(status))


def _as_bytes(text: str | bytes | bytearray | memoryview) -> bytes:
    if isinstance(text, str):
        # Lone surrogates are passed on as the bytes they would be, so the C
        # side reports the invalid UTF-8 (with its offset) instead of Python
        # raising a UnicodeEncodeError here.
        return text.encode("utf-8", errors="surrogatepass")
    return bytes(text)


def tokenize_handle(handle: Any, text: str | bytes, add_bos: bool = False, special: bool = False) -> list[int]:
    """Token ids of text through a ``const bitnet_tokenizer *``."""
    data = _as_bytes(text)
    n = ffi.new("int32_t *")
    # A first guess that fits almost always: one id per byte (+ BOS).
    cap = len(data) + 2
    buf = ffi.new("int32_t[]", cap)
    status = lib.bitnet_tokenize(handle, data, len(data), 1 if add_bos else 0, 1 if special else 0, buf, cap, n)
    if status == _BUFFER_TOO_SMALL:
        cap = n[0]
        buf = ffi.new("int32_t[]", cap)
        status = lib.bitnet_tokenize(handle, data, len(data), 1 if add_bos else 0, 1 if special else 0, buf, cap, n)
    if status != 0:
        raise _tok_error(handle, status)
    return list(ffi.unpack(buf, n[0]))


def detokenize_bytes_handle(handle: Any, ids: Sequence[int] | Iterable[int]) -> bytes:
    """The bytes ids stand for through a ``const bitnet_tokenizer *``."""
    ids = list(ids)
    arr = ffi.new("int32_t[]", ids) if ids else ffi.NULL
    needed = ffi.new("size_t *")
    cap = 16 * len(ids) + 16
    buf = ffi.new("char[]", cap)
    status = lib.bitnet_detokenize(handle, arr, len(ids), buf, cap, needed)
    if status == _BUFFER_TOO_SMALL:
        cap = needed[0]
        buf = ffi.new("char[]", cap)
        status = lib.bitnet_detokenize(handle, arr, len(ids), buf, cap, needed)
    if status != 0:
        raise _tok_error(handle, status)
    return ffi.buffer(buf, needed[0])[:]


def detokenize_handle(handle: Any, ids: Sequence[int] | Iterable[int]) -> str:
    """The text of ids (invalid UTF-8, e.g. half a character, becomes U+FFFD)."""
    return detokenize_bytes_handle(handle, ids).decode("utf-8", errors="replace")


def text_pieces(handle: Any) -> Callable[[int], bytes]:
    """token id -> the bytes it adds to generated text, memoized. Control
    tokens (BOS, EOS, <|eot_id|>, ...) add none, as in llama.cpp's output
    unless asked for special tokens; other tokens give their piece, which
    keeps the space SentencePiece writes as its leading "\u2581"."""
    pieces: dict[int, bytes] = {}

    def piece(token: int) -> bytes:
        if token not in pieces:
            control = lib.bitnet_token_type_of(handle, token) == lib.BITNET_TOKEN_CONTROL
            pieces[token] = b"" if control else token_to_piece_handle(handle, token)
        return pieces[token]

    return piece


def token_to_piece_handle(handle: Any, token: int) -> bytes:
    needed = ffi.new("size_t *")
    buf = ffi.new("char[]", 64)
    status = lib.bitnet_token_to_piece(handle, token, buf, 64, needed)
    if status == _BUFFER_TOO_SMALL:
        buf = ffi.new("char[]", needed[0])
        status = lib.bitnet_token_to_piece(handle, token, buf, needed[0], needed)
    if status != 0:
        raise _tok_error(handle, status)
    return ffi.buffer(buf, needed[0])[:]


class Tokenizer(OwnsHandles):
    """The tokenizer of a GGUF file (any GGUF with ``tokenizer.ggml.*`` keys,
    including vocab-only files with no tensors)."""

    def __init__(self, path: PathLike) -> None:
        self._tok = ffi.NULL
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(errno.ENOENT, "tokenizer file not found", self.path)
        out = ffi.new("bitnet_tokenizer **")
        check(lib.bitnet_tokenizer_load(os.fsencode(self.path), out))
        self._tok = out[0]

    # -- lifetime --------------------------------------------------------------
    def close(self) -> None:
        if self._tok != ffi.NULL:
            lib.bitnet_tokenizer_free(self._tok)
            self._tok = ffi.NULL

    def _live(self) -> Any:
        if self._tok == ffi.NULL:
            raise ValueError("the Tokenizer is closed")
        return self._tok

    # -- properties ------------------------------------------------------------
    @property
    def n_vocab(self) -> int:
        return int(lib.bitnet_tokenizer_n_vocab(self._live()))

    @property
    def bos_id(self) -> int:
        """BOS id, -1 when the vocabulary has none."""
        return int(lib.bitnet_tokenizer_bos(self._live()))

    @property
    def eos_id(self) -> int:
        return int(lib.bitnet_tokenizer_eos(self._live()))

    @property
    def eot_id(self) -> int:
        """End-of-turn id (``<|eot_id|>``, ``<|im_end|>``, ...), -1 when none."""
        return int(lib.bitnet_tokenizer_eot(self._live()))

    @property
    def add_bos(self) -> bool:
        """Whether the GGUF asks for BOS at the start of a prompt."""
        return bool(lib.bitnet_tokenizer_add_bos(self._live()))

    def __len__(self) -> int:
        return self.n_vocab

    def __repr__(self) -> str:
        if self._tok == ffi.NULL:
            return f"<bitnet.Tokenizer {self.path!r} (closed)>"
        return f"<bitnet.Tokenizer {self.path!r} n_vocab={self.n_vocab}>"

    # -- work ------------------------------------------------------------------
    def tokenize(self, text: str | bytes, add_bos: bool = False, special: bool = False) -> list[int]:
        """Token ids of text (str, or UTF-8 bytes). ``special=True`` parses
        control tokens such as ``<|eot_id|>`` as single tokens. Invalid UTF-8
        raises BitNetError naming the byte offset."""
        return tokenize_handle(self._live(), text, add_bos, special)

    def detokenize(self, ids: Sequence[int] | Iterable[int]) -> str:
        """The text of ids; ``detokenize(tokenize(x)) == x``. Special tokens
        appear as their text. Bytes that do not form UTF-8 (an id sequence
        ending inside a character) become U+FFFD, as in Hugging Face."""
        return detokenize_handle(self._live(), ids)

    def detokenize_bytes(self, ids: Sequence[int] | Iterable[int]) -> bytes:
        """Like detokenize, as raw bytes (no replacement)."""
        return detokenize_bytes_handle(self._live(), ids)

    def token_to_piece(self, token: int) -> bytes:
        """The bytes one token stands for: possibly part of a UTF-8 character
        (see ``stream``). SentencePiece pieces keep their leading space."""
        return token_to_piece_handle(self._live(), token)

    def stream(self, ids: Iterable[int]) -> Iterator[str]:
        """Decode ids one at a time, yielding text as soon as it is complete
        UTF-8 (never half a character). For SentencePiece the space that
        tokenization put at the start is not removed: this is for continuations."""
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for token in ids:
            text = dec.decode(self.token_to_piece(token))
            if text:
                yield text
        tail = dec.decode(b"", final=True)
        if tail:
            yield tail
