"""bitnet: an inference engine for BitNet b1.58 (ternary-weight) language models.

    >>> import bitnet
    >>> with bitnet.Model("model.gguf") as m:
    ...     ids = m.generate_tokens([1, 2, 3], max_tokens=16)

The engine is C (libbitnet); this package is a thin cffi binding over its
public API (``bitnet.h``).
"""

from __future__ import annotations

from ._errors import BitNetError
from ._lib import ffi as _ffi
from ._lib import lib as _lib
from ._sysinfo import system_info
from .default_model import default_model_path
from .model import BitNetModel, Model
from .tokenizer import Tokenizer

__version__: str = _ffi.string(_lib.bitnet_version()).decode()

__all__ = ["BitNetError", "BitNetModel", "Model", "Tokenizer", "__version__", "default_model_path", "system_info"]
