"""Both engines behind one small interface, on token id lists (no tokenizer involved).

``logits(ids)``: teacher-forced logits of a fresh sequence, float32 (len(ids), n_vocab),
row i = the logits after ids[:i + 1], all ids decoded in one batch.
``greedy(prompt, n)``: the prompt decoded in one batch, then n argmax steps, one token
per decode through the KV cache (how both engines generate).

Settings shared by both (``Settings``): context size, threads, a float16 KV cache (the
default of both), and upstream's flash attention on or off (llama.cpp's own default,
``-fa auto``, turns it on for the CPU; llama-cpp-python's is off). Ours has one path.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Settings:
    n_ctx: int = 512
    n_threads: int = 2
    flash_attn: bool = True


class Ours:
    name = "bitnet"

    def __init__(self, path: Path, s: Settings) -> None:
        import bitnet

        self.model = bitnet.Model(str(path), n_ctx=s.n_ctx, n_threads=s.n_threads, kv_type="f16")

    def logits(self, ids: list[int]) -> np.ndarray:
        return self.model.logits(ids)

    def greedy(self, prompt: list[int], n: int) -> list[int]:
        return self.model.generate_tokens(prompt, n, temperature=0.0, ignore_eos=True)

    def close(self) -> None:
        self.model.close()


@dataclass
class _LogSink:
    """Collects llama.cpp's error messages (its log otherwise goes to stderr)."""
    errors: list[str] = field(default_factory=list)
    callback: Any = None


_SINK = _LogSink()


def _install_log_sink() -> None:
    import llama_cpp

    if _SINK.callback is not None:
        return

    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        if level == 4:  # GGML_LOG_LEVEL_ERROR in this ggml (llama_cpp/_logger.py's table is older)
            _SINK.errors.append(text.decode("utf-8", "replace").strip())

    _SINK.callback = on_log  # keep the ctypes function alive as long as llama.cpp may call it
    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))


class Upstream:
    name = "llama.cpp"

    def __init__(self, path: Path, s: Settings) -> None:
        import llama_cpp

        _install_log_sink()
        _SINK.errors.clear()
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=s.n_ctx, n_batch=s.n_ctx, n_ubatch=s.n_ctx,
                                   n_threads=s.n_threads, n_threads_batch=s.n_threads, logits_all=True,
                                   flash_attn=s.flash_attn, verbose=False)

    def logits(self, ids: list[int]) -> np.ndarray:
        self.llm.reset()
        self.llm.eval(ids)
        return np.array(self.llm.scores[: len(ids)], dtype=np.float32, copy=True)

    def greedy(self, prompt: list[int], n: int) -> list[int]:
        self.llm.reset()
        self.llm.eval(prompt)
        out: list[int] = []
        for i in range(n):
            tok = int(np.argmax(self.llm.scores[self.llm.n_tokens - 1]))
            out.append(tok)
            if i + 1 < n:
                self.llm.eval([tok])
        return out

    def close(self) -> None:
        self.llm.close()


def upstream_refusal(path: Path, s: Settings) -> str | None:
    """None when upstream loads ``path``; else why not (its error log, or the exception)."""
    try:
        Upstream(path, s).close()
    except (ValueError, RuntimeError) as exc:
        lines = [e for e in _SINK.errors if e] or [str(exc)]
        # de-duplicated, in order; the file named without its (machine-specific) folder
        return "; ".join(dict.fromkeys(lines)).replace(str(path), path.name)
    return None


def upstream_info() -> dict[str, str]:
    import llama_cpp

    return {"llama_cpp_python": llama_cpp.__version__,
            "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()}


def ours_info(path: Path) -> dict[str, str]:
    import bitnet

    with bitnet.Model(str(path), n_ctx=16) as m:
        kernel = m.kernel
    return {"bitnet": bitnet.__version__, "kernel": kernel}
