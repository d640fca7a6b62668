"""What a server serves: :class:`ServerConfig`, from arguments or a TOML file.

One model from the command line (``bitnet serve model.gguf``), or several
from a TOML file (``bitnet serve models.toml``; ``bitnet config validate
models.toml`` checks one)::

    [server]
    max_tokens_cap = 1024        # optional: max_body_bytes, max_queue, reload_interval
    api_key_env = "BITNET_API_KEY"   # the key comes from this environment variable

    [models.kjv]                 # clients ask for "model": "kjv"
    path = "kjv.gguf"            # relative to this file
    slots = 4                    # optional: n_ctx, threads, kernel

    [models.assistant]           # an A/B test: two versions, traffic split by weight
    slots = 2
    variants = [
        { name = "v1", path = "assistant-v1.gguf", weight = 90 },
        { name = "v2", path = "assistant-v2.gguf", weight = 10 },
    ]

The first model is the default (a request without ``model``). Every file is
watched: replace it (best by an atomic rename) and the server loads the new
one next to the old, then sends new requests to it while the old one
finishes its in-flight requests (``reload_interval`` seconds between
checks; 0 turns watching off).
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_VARIANT = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class ConfigError(ValueError):
    """A config file that cannot be served: the message names the file and the key."""


@dataclass(frozen=True)
class Variant:
    """One file behind a model name; ``weight`` is its share of the traffic."""

    name: str
    path: str
    weight: float = 1.0


@dataclass
class ModelSpec:
    """A model name clients ask for, its files and how each is run."""

    name: str
    variants: list[Variant]
    n_slots: int = 4
    n_ctx: int | None = None
    n_threads: int | None = None
    kernel: str | None = None


@dataclass
class ServerConfig:
    """Everything ``create_app`` needs. Either ``model_path`` and
    ``model_name`` (one model, with the per-model settings below), or
    ``models`` (several, each with its own settings)."""

    model_path: str | None = None
    model_name: str | None = None
    n_slots: int = 4
    n_ctx: int | None = None
    n_threads: int | None = None
    kernel: str | None = None
    api_key: str | None = None
    max_tokens_cap: int | None = None  # None: the context size
    max_queue: int = 64
    max_body_bytes: int = 1 << 20
    models: list[ModelSpec] = field(default_factory=list)
    reload_interval: float = 2.0  # seconds between checks of the model files; 0: off
    tracer_provider: Any = None  # an OpenTelemetry TracerProvider; None: the process's (tracing.py)

    def model_specs(self) -> list[ModelSpec]:
        if self.models:
            return self.models
        if not self.model_path:
            raise ConfigError("a server needs model_path (and model_name) or models")
        name = self.model_name or Path(self.model_path).name.removesuffix(".gguf")
        return [ModelSpec(name, [Variant(DEFAULT_VARIANT, self.model_path)], self.n_slots, self.n_ctx,
                          self.n_threads, self.kernel)]


# ---- the TOML file --------------------------------------------------------------------------

_SERVER_KEYS = {"max_tokens_cap", "max_queue", "max_body_bytes", "reload_interval", "api_key_env"}
_MODEL_KEYS = {"path", "variants", "slots", "n_ctx", "threads", "kernel"}
_VARIANT_KEYS = {"name", "path", "weight"}
_KERNELS = {"auto", "scalar", "avx2", "avx512", "neon", "wasm_simd"}


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.9 and 3.10
        import tomli as tomllib
    return tomllib.loads(text)


def load_config(path: str | os.PathLike[str], *, check_files: bool = True) -> ServerConfig:
    """Parse and check a TOML server config. Relative model paths are taken
    from the file's folder; ``check_files`` also requires each to exist."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    try:
        data = _toml_loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    unknown = set(data) - {"server", "models"}
    if unknown:
        raise ConfigError(f"{where}: unknown table(s) {', '.join(sorted(unknown))} (expected [server], [models.NAME])")
    config = ServerConfig()
    server = _table(data.get("server", {}), f"{where}: [server]")
    _no_unknown(server, _SERVER_KEYS, f"{where}: [server]")
    if "max_tokens_cap" in server:
        config.max_tokens_cap = _positive_int(server, "max_tokens_cap", f"{where}: [server]")
    if "max_queue" in server:
        config.max_queue = _positive_int(server, "max_queue", f"{where}: [server]")
    if "max_body_bytes" in server:
        config.max_body_bytes = _positive_int(server, "max_body_bytes", f"{where}: [server]")
    if "reload_interval" in server:
        value = server["reload_interval"]
        if not _is_number(value) or value < 0:
            raise ConfigError(f"{where}: [server] reload_interval must be a number of seconds >= 0, got {value!r}")
        config.reload_interval = float(value)
    if "api_key_env" in server:
        env = server["api_key_env"]
        if not isinstance(env, str) or not env:
            raise ConfigError(f"{where}: [server] api_key_env must name an environment variable")
        config.api_key = os.environ.get(env) or None
    models = _table(data.get("models"), f"{where}: [models]")
    if not models:
        raise ConfigError(f"{where}: no models: add a [models.NAME] table with a path")
    for name, table in models.items():
        config.models.append(_model(name, _table(table, f"{where}: [models.{name}]"), path.parent, where,
                                    check_files))
    return config


def _model(name: str, table: dict[str, Any], base: Path, where: str, check_files: bool) -> ModelSpec:
    at = f"{where}: [models.{name}]"
    if not _NAME.match(name):
        raise ConfigError(f"{at}: a model name is letters, digits and . _ : / - (at most 128)")
    _no_unknown(table, _MODEL_KEYS, at)
    if ("path" in table) == ("variants" in table):
        raise ConfigError(f"{at}: give either path = \"FILE.gguf\" or variants = [{{name, path, weight}}, ...]")
    if "path" in table:
        variants = [Variant(DEFAULT_VARIANT, _file(table["path"], base, f"{at} path", check_files))]
    else:
        items = table["variants"]
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{at}: variants must be a non-empty list of {{name, path, weight}}")
        variants = []
        for i, item in enumerate(items):
            vat = f"{at} variants[{i}]"
            item = _table(item, vat)
            _no_unknown(item, _VARIANT_KEYS, vat)
            vname = item.get("name")
            if not isinstance(vname, str) or not _NAME.match(vname):
                raise ConfigError(f"{vat}: name must be a short name (letters, digits, . _ : / -)")
            weight = item.get("weight", 1)
            if not _is_number(weight) or weight <= 0:
                raise ConfigError(f"{vat}: weight must be a number above 0, got {weight!r}")
            variants.append(Variant(vname, _file(item.get("path"), base, f"{vat} path", check_files), float(weight)))
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"{at}: variant names must differ, got {names}")
    spec = ModelSpec(name, variants)
    if "slots" in table:
        spec.n_slots = _positive_int(table, "slots", at)
    if "n_ctx" in table:
        spec.n_ctx = _positive_int(table, "n_ctx", at)
    if "threads" in table:
        spec.n_threads = _positive_int(table, "threads", at)
    if "kernel" in table:
        kernel = table["kernel"]
        if kernel not in _KERNELS:
            raise ConfigError(f"{at}: kernel must be one of {', '.join(sorted(_KERNELS))}, got {kernel!r}")
        spec.kernel = kernel
    return spec


def _file(value: Any, base: Path, at: str, check: bool) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{at} must be a file name")
    path = Path(os.path.expanduser(value))
    path = path if path.is_absolute() else base / path
    if check and not path.is_file():
        raise ConfigError(f"{at}: {path}: model file not found")
    return str(path)


def _table(value: Any, at: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{at} must be a table")
    return value


def _no_unknown(table: dict[str, Any], known: set[str], at: str) -> None:
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{at}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(table: dict[str, Any], key: str, at: str) -> int:
    value = table[key]
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{at}: {key} must be a positive integer, got {value!r}")
    return value
