"""A live ``bitnet serve`` app for tests: uvicorn on a free port of 127.0.0.1, in a thread."""

from __future__ import annotations

import re
import socket
import threading
import time

import httpx
import uvicorn

from bitnet.server import ServerConfig, create_app


class LiveServer:
    """Serves ``create_app(config)``; ready (GET /health == 200) when the constructor returns."""

    def __init__(self, config: ServerConfig, ready_timeout: float = 30) -> None:
        self.app = create_app(config)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the server did not become healthy")

    @property
    def engine(self):  # noqa: ANN201 - bitnet.server.engine.Engine
        """The default model's engine."""
        return self.app.state.bitnet.engine

    def metric(self, name: str) -> float:
        """The value of one series of /metrics, e.g. 'bitnet_slots' or 'x_total{a="b"}' (0 if absent)."""
        text = httpx.get(self.url + "/metrics").text
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
