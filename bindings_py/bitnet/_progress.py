"""Model-load progress: ``bitnet_model_params.progress_callback`` into Python.

``Model(path, progress=...)`` takes True (a tqdm bar on stderr), a callable
``f(fraction)`` or None. The C loader calls back while it reads the file
(``use_mmap=False``; a mapped file is not read at load time) and once with
1.0 at the end. An exception in the callable (Ctrl-C included) cancels the
load and is re-raised by ``Model()`` after C has freed everything.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional, Union

from ._lib import ffi

ProgressArg = Union[bool, Callable[[float], Any], None]


class LoadProgress:
    """The Python side of one load's progress callback (passed to C as a handle)."""

    def __init__(self, fn: Callable[[float], Any]) -> None:
        self.fn = fn
        self.error: Optional[BaseException] = None


def _on_error(exc_type: type, exc: BaseException, tb: Any) -> int:
    return 1  # an exception outside the try below: cancel the load


@ffi.def_extern(onerror=_on_error)
def _bitnet_on_progress(progress: float, user_data: Any) -> int:
    state = ffi.from_handle(user_data)
    try:
        state.fn(float(progress))
        return 0
    except BaseException as exc:  # re-raised by Model() after the C call returns
        state.error = exc
        return 1


class TqdmBar:
    """A tqdm bar over the file's bytes, closed at 100%."""

    def __init__(self, size: int, name: str) -> None:
        from tqdm import tqdm

        self.size = size
        self.bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=f"loading {name}",
                        file=sys.stderr, leave=False, dynamic_ncols=True)

    def __call__(self, fraction: float) -> None:
        self.bar.update(int(fraction * self.size) - self.bar.n)
        if fraction >= 1.0:
            self.bar.close()


def make_progress(progress: ProgressArg, size: int, name: str) -> Optional[LoadProgress]:
    if progress is None or progress is False:
        return None
    if progress is True:
        return LoadProgress(TqdmBar(size, name))
    if callable(progress):
        return LoadProgress(progress)
    raise TypeError(f"progress must be True, False, None or a callable, got {type(progress).__name__}")
