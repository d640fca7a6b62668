"""The table of targets: name -> function(out_dir) returning the artifacts it made and checked.

Each target lives in its own module, imported only when that target runs, so a missing tool of
one target does not stop another.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from .common import Artifact

Target = Callable[[Path], "list[Artifact]"]


def _lazy(module: str) -> Target:
    def target(out: Path) -> list[Artifact]:
        return importlib.import_module(f"bnpack.{module}").build_and_check(out)

    target.__name__ = module
    return target


TARGETS: dict[str, Target] = {
    "source": _lazy("source_archive"),
    "sdist": _lazy("sdist"),
    "wheel": _lazy("wheel"),
    "deb": _lazy("deb"),
    "brew": _lazy("brew"),
    "choco": _lazy("choco"),
    "snap": _lazy("snap"),
    "install-scripts": _lazy("install_scripts"),
    "wasm": _lazy("wasm"),
}
