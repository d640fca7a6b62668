"""The models one server serves: loading, routing, A/B splits and hot reloads.

Each variant of each model (config.py) runs on its own :class:`~.engine.Engine`.

* **Routing**: a request names a model (none: the first). With several
  variants, one is picked by weight: from a hash of the request's ``user``
  when it has one (so a user stays on one variant), else at random.
* **Hot reload**: a watcher thread checks every file each
  ``reload_interval`` seconds. A file whose (mtime, size) changed, and then
  held still for one more check (a copy in progress is not loaded), is
  loaded into a new engine next to the old one. New requests go to the new
  engine; the old one takes no new request (``Engine.retire``), finishes its
  in-flight ones and is closed. A file that fails to load leaves the old
  engine serving; the error is logged, counted and shown by /health.
* **Metrics**: requests and tokens per (model, variant), reloads by result,
  when each variant's file was loaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from dataclasses import dataclass

from .config import ModelSpec, ServerConfig, Variant
from .engine import Engine
from .metrics import ServerMetrics

log = logging.getLogger("bitnet.server")

_DRAIN_POLL_S = 0.05


@dataclass
class Served:
    """A loaded variant: its engine and the file's (mtime_ns, size) when it was loaded."""

    spec: ModelSpec
    variant: Variant
    engine: Engine
    stamp: tuple[int, int]


class UnknownModel(KeyError):
    pass


class NotReady(RuntimeError):
    pass


def _stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size)


class ModelManager:
    def __init__(self, config: ServerConfig, metrics: ServerMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.specs = {spec.name: spec for spec in config.model_specs()}
        self.default = next(iter(self.specs))
        self._served: dict[tuple[str, str], Served] = {}
        self._errors: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pending: dict[tuple[str, str], tuple[int, int]] = {}
        self._threads: list[threading.Thread] = []

    # ---- loading ----------------------------------------------------------------------------

    def _load(self, spec: ModelSpec, variant: Variant) -> Served:
        stamp = _stamp(variant.path)  # before loading: a change during the load is seen next time
        engine = Engine(variant.path, n_slots=spec.n_slots, n_ctx=spec.n_ctx, n_threads=spec.n_threads,
                        kernel=spec.kernel, max_queue=self.config.max_queue, metrics=self.metrics,
                        labels=(spec.name, variant.name))
        self.metrics.model_loaded.labels(spec.name, variant.name).set(time.time())
        return Served(spec, variant, engine, stamp)

    def load_all(self) -> None:
        """Load every variant (the app's loader thread), then start watching the files."""
        for spec in self.specs.values():
            for variant in spec.variants:
                key = (spec.name, variant.name)
                try:
                    served = self._load(spec, variant)
                except Exception as exc:  # noqa: BLE001 - shown by /health and every request
                    self._errors[key] = f"{type(exc).__name__}: {exc}"
                    log.error("model %s variant %s: %s", *key, self._errors[key])
                    continue
                with self._lock:
                    self._served[key] = served
        if self.config.reload_interval > 0 and not self._stop.is_set():
            self._start(self._watch, "bitnet-reload")

    def status(self) -> dict[str, str]:
        """'model/variant' -> "ok", "loading" or the load error."""
        out = {}
        for spec in self.specs.values():
            for variant in spec.variants:
                key = (spec.name, variant.name)
                out["/".join(key)] = "ok" if key in self._served else self._errors.get(key, "loading")
        return out

    def warnings(self) -> dict[str, str]:
        """'model/variant' -> the error of a failed reload, for variants still serving their previous file."""
        with self._lock:
            return {"/".join(k): v for k, v in self._errors.items() if k in self._served}

    @property
    def load_error(self) -> str | None:
        return "; ".join(f"{k}: {v}" for k, v in self.status().items() if v not in ("ok", "loading")) or None

    # ---- routing ------------------------------------------------------------------------------

    def pick(self, name: str | None, user: str | None = None, *, count: bool = True) -> Served:
        """The served variant for a request of model ``name`` (None: the default)."""
        spec = self.specs.get(name or self.default)
        if spec is None:
            raise UnknownModel(name)
        loaded = self._loaded(spec)
        if not loaded:
            raise NotReady(spec.name)
        total = sum(s.variant.weight for s in loaded)
        if user:
            digest = hashlib.sha256(f"{spec.name}\0{user}".encode("utf-8", "surrogatepass")).digest()
            point = int.from_bytes(digest[:8], "big") / 2**64 * total
        else:
            point = random.random() * total
        chosen = loaded[-1]
        for served in loaded:
            point -= served.variant.weight
            if point < 0:
                chosen = served
                break
        if count:
            self.metrics.model_requests.labels(spec.name, chosen.variant.name).inc()
        return chosen

    def any_engine(self) -> Engine | None:
        """The default model's first loaded engine (tests pause and resume it)."""
        loaded = self._loaded(self.specs[self.default])
        return loaded[0].engine if loaded else None

    def _loaded(self, spec: ModelSpec) -> list[Served]:
        """The loaded variants of ``spec``, in the config's order."""
        with self._lock:
            return [self._served[(spec.name, v.name)] for v in spec.variants if (spec.name, v.name) in self._served]

    # ---- hot reload ---------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.config.reload_interval):
            with self._lock:
                current = list(self._served.items())
            for key, served in current:
                try:
                    stamp = _stamp(served.variant.path)
                except OSError:
                    continue  # being replaced right now, or gone: keep serving the loaded one
                if stamp == served.stamp:
                    self._pending.pop(key, None)
                elif self._pending.get(key) != stamp:
                    self._pending[key] = stamp  # changed: load it once it holds still for a check
                else:
                    del self._pending[key]
                    self.reload(key)

    def reload(self, key: tuple[str, str]) -> bool:
        """Load variant ``key``'s file again and switch to it; the old engine drains."""
        with self._lock:
            old = self._served.get(key)
        spec = self.specs[key[0]]
        variant = next(v for v in spec.variants if v.name == key[1])
        try:
            new = self._load(spec, variant)
        except Exception as exc:  # noqa: BLE001 - the old file keeps serving
            self._errors[key] = f"reload failed, still serving the previous file: {type(exc).__name__}: {exc}"
            self.metrics.model_reloads.labels(*key, "error").inc()
            log.error("model %s variant %s: %s", *key, self._errors[key])
            if old is not None:
                old.stamp = _safe_stamp(variant.path, old.stamp)  # do not retry the same bad file
            return False
        with self._lock:
            self._served[key] = new
        self._errors.pop(key, None)
        self.metrics.model_reloads.labels(*key, "ok").inc()
        log.info("model %s variant %s: reloaded %s", *key, variant.path)
        if old is not None:
            old.engine.retire()
            self._start(lambda: self._drain(old.engine), "bitnet-drain")
        return True

    def _drain(self, engine: Engine) -> None:
        while not engine.idle and not self._stop.is_set():
            time.sleep(_DRAIN_POLL_S)
        engine.close()

    def _start(self, target, name: str) -> None:  # noqa: ANN001 - a thread target
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def close(self) -> None:
        """Stop watching, close every engine (in-flight requests end with an error)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        with self._lock:
            served = list(self._served.values())
            self._served.clear()
        for s in served:
            s.engine.close()


def _safe_stamp(path: str, fallback: tuple[int, int]) -> tuple[int, int]:
    try:
        return _stamp(path)
    except OSError:
        return fallback
