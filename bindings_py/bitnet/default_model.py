"""The embedded default model: a small BitNet b1.58 model shipped in the package.

``bitnet.Model()`` with no path, ``bitnet run "Once upon a time"`` with no
model and the web demo all load it, so the engine runs offline with nothing
to download. It was trained from scratch for this project on public-domain
English (the King James Bible, State of the Union addresses, Shakespeare,
Austen, ...; tools/train_default_model/, whose README records the run) and
converted to I2_S with ``bitnet convert``: expect grammatical English with no
knowledge behind it, not an assistant.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_FILE = "bitnet-english-i2_s.gguf"

# Set to a GGUF path to make it the default instead (e.g. a bigger model).
ENV_VAR = "BITNET_DEFAULT_MODEL"


def default_model_path() -> Path:
    """Where the default model is: ``$BITNET_DEFAULT_MODEL`` or the file in the package.

    Raises FileNotFoundError with a message saying what to do when neither exists
    (a source checkout whose package data was stripped, say).
    """
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override)
        if not path.is_file():
            raise FileNotFoundError(f"${ENV_VAR} names {path}, which is not a file")
        return path
    path = Path(__file__).resolve().parent / "models" / DEFAULT_MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"the embedded default model is missing ({path}); reinstall libbitnet or pass a GGUF path"
        )
    return path
