"""bitnet: an inference engine for BitNet b1.58 (ternary-weight) language models.

    >>> import bitnet
    >>> with bitnet.Model("model.gguf") as m:
    ...     ids = m.generate_tokens([1, 2, 3], max_tokens=16)

The engine is C (libbitnet); this package is a thin cffi binding over its
public API (``bitnet.h``). Under Pyodide (in a browser) the same ``Model``
runs on the WebAssembly build of the engine instead (bitnet._browser).
"""

from __future__ import annotations

import sys

from ._errors import BitNetError
from .default_model import default_model_path

if sys.platform == "emscripten":
    # Pyodide (the browser): no cffi, no numpy. Model runs on the WebAssembly
    # engine the page registers as the JS module "bitnet_wasm" (bitnet._browser).
    from ._browser import Model, engine_version, system_info

    BitNetModel = Model
    __version__: str = engine_version()
    __all__ = ["BitNetError", "BitNetModel", "Model", "__version__", "default_model_path", "system_info"]
else:
    from ._lib import ffi as _ffi
    from ._lib import lib as _lib
    from ._sysinfo import system_info
    from .model import BitNetModel, Model
    from .tokenizer import Tokenizer

    __version__ = _ffi.string(_lib.bitnet_version()).decode()
    __all__ = ["BitNetError", "BitNetModel", "Model", "Tokenizer", "__version__", "default_model_path",
               "system_info"]
