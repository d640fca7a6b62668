#!/usr/bin/env python3
"""Serve the web build (dist/web: the demo page, bitnet.js, the wasm engine) on 127.0.0.1.

    python web/build.py --demo && python web/serve.py            # http://127.0.0.1:8000/
    python web/serve.py --port 8080 --dir some/other/dir
    python web/serve.py --isolated   # cross-origin isolated: BitNet.load({threads}) may use the pthreads build

Standard library only (http.server), with the MIME types browsers insist
on: ``application/wasm`` for .wasm (streaming compilation) and
``text/javascript`` for .mjs (ES modules). Bound to 127.0.0.1: a local
development server, not for the internet.

``--isolated`` adds ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp`` to every response (and
``Cross-Origin-Resource-Policy: same-origin`` on each resource), so the page
is ``crossOriginIsolated`` and may use SharedArrayBuffer: the pthreads build
(libbitnet-mt). Everything the page loads must then come from this server
(or send CORP/CORS headers itself).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / "dist" / "web"

MIME_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".gguf": "application/octet-stream",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".css": "text/css",
    ".html": "text/html; charset=utf-8",
}


ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}
    isolated = False

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        if self.isolated:
            for k, v in ISOLATION_HEADERS.items():
                self.send_header(k, v)
        super().end_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:  # quieter: failures only
        if str(code).isdigit() and int(code) >= 400:
            super().log_request(code, size)


def make_server(directory: Path = DEFAULT_DIR, port: int = 8000,
                isolated: bool = False) -> http.server.ThreadingHTTPServer:
    """A server for directory on 127.0.0.1:port (0: any free port); call serve_forever().
    isolated: send the cross-origin isolation headers (COOP/COEP/CORP)."""
    handler = functools.partial(type("IsolatedHandler", (Handler,), {"isolated": True}) if isolated else Handler,
                                directory=str(directory))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="directory to serve (default dist/web)")
    ap.add_argument("--isolated", action="store_true",
                    help="send COOP same-origin + COEP require-corp (cross-origin isolated: threads allowed)")
    args = ap.parse_args(argv)
    if not (args.dir / "index.html").is_file():
        print(f"web/serve.py: {args.dir}/index.html is missing: run python web/build.py --demo first", file=sys.stderr)
        return 1
    server = make_server(args.dir, args.port, args.isolated)
    note = " cross-origin isolated" if args.isolated else ""
    print(f"serving {args.dir}{note} on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
