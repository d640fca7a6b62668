"""Sampling settings shared by every generating call of ``bitnet.Model``.

``Sampling`` holds the keyword arguments ``generate``, ``stream``, ``chat``
and ``generate_tokens`` accept and turns them into a C sampler
(``bitnet_sampler_create``). The defaults are greedy decoding; the filters
(top-k, top-p, min-p) only matter once ``temperature > 0``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sampling:
    """How the next token is picked (see ``bitnet_sampler_params`` in bitnet.h).

    ``temperature=0`` is greedy (argmax). ``seed`` fixes the random draws
    (None: the library's fixed default, so runs repeat). ``ignore_eos`` keeps
    generating past end-of-text/end-of-turn tokens.
    """

    temperature: float = 0.0
    seed: int | None = None
    ignore_eos: bool = False
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> Sampling:
        """Build from ``**sampling`` keyword arguments; an unknown name is a TypeError
        that lists the known ones (a typo must not silently sample greedily)."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise TypeError(f"unknown sampling argument(s) {', '.join(unknown)}; expected some of {', '.join(names)}")
        return cls(**kwargs)

    @property
    def flags(self) -> int:
        """The ``flags`` argument of ``bitnet_generate_tokens*``."""
        from ._lib import lib  # imported here: the Pyodide backend uses this class without cffi

        return int(lib.BITNET_GENERATE_IGNORE_EOS) if self.ignore_eos else 0

    def make_sampler(self) -> Any:
        """A new C sampler with these settings, freed when garbage-collected."""
        from ._lib import check, ffi, lib

        sp = ffi.new("bitnet_sampler_params *")
        lib.bitnet_sampler_params_init(sp)
        sp.temperature = self.temperature
        sp.top_k = self.top_k
        sp.top_p = self.top_p
        sp.min_p = self.min_p
        sp.repeat_penalty = self.repeat_penalty
        sp.repeat_last_n = self.repeat_last_n
        sp.frequency_penalty = self.frequency_penalty
        sp.presence_penalty = self.presence_penalty
        if self.seed is not None:
            sp.seed = self.seed & 0xFFFFFFFFFFFFFFFF
        out = ffi.new("bitnet_sampler **")
        check(lib.bitnet_sampler_create(sp, out))
        return ffi.gc(out[0], lib.bitnet_sampler_free)
