"""``bitnet serve [MODEL | CONFIG.toml]``: an OpenAI-compatible HTTP server.

Endpoints: POST /v1/completions and /v1/chat/completions (with SSE
streaming), GET /v1/models, GET /health, GET /metrics (Prometheus), POST
/tokenize and /detokenize (llama.cpp server's shapes). Requests are decoded
together by continuous batching: --slots sequences share one forward pass per
step, and a request's greedy output is the same as running it alone.

Several models, A/B splits between versions of one, and hot reloading of
changed files come from a TOML file (``bitnet config validate FILE`` checks
one; its format: ``bitnet.server.config``). With a config file, the model
options (--slots, -c, -t, --kernel) are taken from it; the server options
given here override its [server] table.

Needs the server extra: pip install 'libbitnet[server]'.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ._cli_common import add_model_options, fail, positive_int, resolve_model_path


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help="a GGUF model file, or a TOML config of several models (default: the embedded default model)")
    add_model_options(p, n_ctx_help="context size of each slot in tokens (default: the model's, at most 4096)")
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    g.add_argument("--port", type=positive_int, default=8080, help="port to listen on (default: 8080)")
    g.add_argument("--slots", type=positive_int, default=4, metavar="N",
                   help="requests generated together (default: 4); each slot has its own context")
    g.add_argument("--max-queue", type=positive_int, default=None, metavar="N",
                   help="requests that may wait for a slot before the server answers 429 (default: 64)")
    g.add_argument("--api-key", default=None, metavar="KEY",
                   help="require 'Authorization: Bearer KEY' (default: $BITNET_API_KEY, else no key)")
    g.add_argument("--max-tokens-cap", type=positive_int, default=None, metavar="N",
                   help="most tokens one request may ask for (default: the context size)")
    g.add_argument("--model-name", default=None, metavar="NAME",
                   help="the model id clients use (default: the file name without .gguf)")
    return p


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .server import ServerConfig, create_app
        from .server.config import ConfigError, load_config
        from .server.tracing import configure_from_env
    except ImportError as exc:
        return fail(f"the server needs {exc.name}: pip install 'libbitnet[server]'")
    traced = configure_from_env()
    if traced:
        print(f"bitnet serve: OpenTelemetry traces go to the {traced} exporter", file=sys.stderr)
    if args.model and args.model.endswith(".toml"):
        try:
            config = load_config(args.model)
        except ConfigError as exc:
            return fail(str(exc))
    else:
        path = resolve_model_path(args.model)
        if not os.path.isfile(path):
            return fail(f"{path}: model file not found")
        name = args.model_name or os.path.basename(path).removesuffix(".gguf")
        config = ServerConfig(model_path=path, model_name=name, n_slots=args.slots, n_ctx=args.n_ctx,
                              n_threads=args.threads, kernel=args.kernel)
    # The server options given here win over a config file's [server] table.
    config.api_key = args.api_key or config.api_key or os.environ.get("BITNET_API_KEY") or None
    config.max_tokens_cap = args.max_tokens_cap or config.max_tokens_cap
    config.max_queue = args.max_queue or config.max_queue
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="info")
    return 0
