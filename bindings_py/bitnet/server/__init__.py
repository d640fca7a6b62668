"""``bitnet.server``: an OpenAI-compatible HTTP server with continuous batching.

Needs the ``server`` extra (``pip install 'libbitnet[server]'``: Starlette,
uvicorn, prometheus-client). Modules: ``app`` (routes), ``engine`` (the
batching scheduler), ``schemas`` (request validation, OpenAI error shape),
``metrics`` (Prometheus). Run it with ``bitnet serve [MODEL]``, or build the
ASGI app yourself::

    from bitnet.server import ServerConfig, create_app
    app = create_app(ServerConfig(model_path="model.gguf", model_name="model"))
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerConfig", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import bitnet.server` names the missing extra instead of
    # failing on `import starlette` deep inside.
    if name in __all__:
        try:
            from . import app
        except ImportError as exc:
            raise ImportError(f"the bitnet server needs {exc.name}: pip install 'libbitnet[server]'") from exc
        return getattr(app, name)
    raise AttributeError(name)
