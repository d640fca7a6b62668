"""The C model and context a ``Model`` or ``BatchContext`` owns: checks, load, create, free."""

from __future__ import annotations

import errno
import os
import threading
from typing import Any

from ._handle import OwnsHandles
from ._lib import check, ffi, lib
from ._progress import ProgressArg, make_progress


class ModelAndContext(OwnsHandles):
    """Owns ``_model`` and ``_ctx`` (freed in ``close()``) and the ``_lock``
    that keeps the context to one thread at a time, as the C API requires."""

    _model: Any = ffi.NULL
    _ctx: Any = ffi.NULL
    path: str

    def _open(
        self,
        path: str | os.PathLike[str],
        *,
        n_ctx: int | None,
        n_threads: int | None,
        kv_type: str,
        use_mmap: bool = True,
        kernel: str | None = None,
        progress: ProgressArg = None,
        n_batch: int | None = None,
        n_seq: int | None = None,
    ) -> None:
        """Check the arguments, load the model, create its context.

        Every argument is checked before anything is loaded; on failure
        nothing stays allocated."""
        self._lock = threading.Lock()
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(errno.ENOENT, "model file not found", self.path)
        for name, value in (("n_seq", n_seq), ("n_ctx", n_ctx), ("n_threads", n_threads), ("n_batch", n_batch)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        kv_types = {"f16": lib.BITNET_KV_F16, "f32": lib.BITNET_KV_F32}
        if kv_type not in kv_types:
            raise ValueError(f"kv_type must be 'f16' or 'f32', got {kv_type!r}")

        params = ffi.new("bitnet_model_params *")
        lib.bitnet_model_params_init(params)
        params.use_mmap = 1 if use_mmap else 0
        kernel_c = ffi.NULL if kernel is None else ffi.new("char[]", kernel.encode())
        params.kernel = kernel_c  # kernel_c stays referenced until the call returns
        load_progress = make_progress(progress, os.path.getsize(self.path), os.path.basename(self.path))
        if load_progress is not None:
            progress_handle = ffi.new_handle(load_progress)  # alive until the call returns
            params.progress_callback = lib._bitnet_on_progress
            params.progress_user_data = progress_handle
        out = ffi.new("bitnet_model **")
        status = lib.bitnet_model_load(os.fsencode(self.path), params, out)
        if load_progress is not None and load_progress.error is not None:
            raise load_progress.error  # the callback's exception cancelled the load
        check(status)
        del kernel_c
        self._model = out[0]

        cparams = ffi.new("bitnet_context_params *")
        lib.bitnet_context_params_init(cparams)
        cparams.n_ctx = n_ctx or 0
        cparams.n_threads = n_threads or 0
        cparams.n_batch = n_batch or 0
        cparams.kv_type = kv_types[kv_type]
        cparams.n_seq_max = n_seq or 0
        ctx_out = ffi.new("bitnet_context **")
        status = lib.bitnet_context_create(self._model, cparams, ctx_out)
        if status != 0:
            self.close()
            check(status)
        self._ctx = ctx_out[0]

    def close(self) -> None:
        """Free the C model and context. The object is unusable afterwards.

        Waits for a call in progress on another thread (a stream's worker) to end."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before the lock existed
            return
        with lock:
            if self._ctx != ffi.NULL:
                lib.bitnet_context_free(self._ctx)
                self._ctx = ffi.NULL
            if self._model != ffi.NULL:
                lib.bitnet_model_free(self._model)
                self._model = ffi.NULL
