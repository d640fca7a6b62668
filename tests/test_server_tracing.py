"""OpenTelemetry spans of ``bitnet serve`` (issue 7): one per generation request.

The app gets its own TracerProvider with an in-memory exporter (no global
state touched), serves requests, and the spans must carry what the responses
said: model, variant, token counts, finish reason, a first_token event.
"""

from __future__ import annotations

import sys
import time

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed")
pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed")
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from bitnet.default_model import default_model_path  # noqa: E402
from bitnet.server import ServerConfig, create_app  # noqa: E402
from bitnet.server.tracing import Tracer  # noqa: E402


@pytest.fixture(scope="module")
def traced():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(ServerConfig(model_path=str(default_model_path()), model_name="kjv", n_ctx=128,
                                  tracer_provider=provider))
    with TestClient(app) as client:
        while client.get("/health").status_code != 200:
            time.sleep(0.02)
        yield client, exporter


def test_a_completion_makes_one_span_with_the_usage(traced) -> None:
    client, exporter = traced
    exporter.clear()
    r = client.post("/v1/completions", json={"prompt": "And God said", "max_tokens": 5, "temperature": 0})
    usage = r.json()["usage"]
    (span,) = exporter.get_finished_spans()
    a = span.attributes
    assert span.name == "bitnet.generate" and span.status.status_code != StatusCode.ERROR
    assert (a["gen_ai.system"], a["gen_ai.operation.name"], a["gen_ai.request.model"]) == \
        ("bitnet", "text_completion", "kjv")
    assert (a["gen_ai.request.max_tokens"], a["gen_ai.request.temperature"], a["bitnet.variant"]) == (5, 0.0, "default")
    assert a["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert a["gen_ai.usage.output_tokens"] == usage["completion_tokens"] == 5
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("length",)
    assert [e.name for e in span.events] == ["first_token"] and 0 < a["bitnet.time_to_first_token_s"] < 60


def test_a_streamed_chat_makes_one_span_too(traced) -> None:
    client, exporter = traced
    exporter.clear()
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "temperature": 0, "stream": True}
    r = client.post("/v1/chat/completions", json=body)
    assert r.text.rstrip().endswith("data: [DONE]")
    (span,) = exporter.get_finished_spans()
    assert span.attributes["gen_ai.operation.name"] == "chat" and span.attributes["bitnet.stream"] is True
    assert span.attributes["gen_ai.usage.output_tokens"] <= 3


def test_a_rejected_request_makes_no_span(traced) -> None:
    client, exporter = traced
    exporter.clear()
    assert client.post("/v1/completions", json={"prompt": "x", "max_tokens": -1}).status_code == 400
    assert exporter.get_finished_spans() == ()


def test_without_opentelemetry_spans_are_no_ops(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import opentelemetry -> ImportError
    span = Tracer().request(model="m", variant="v", chat=False, max_tokens=1, temperature=0.0, stream=False)
    span.first_token()
    span.end("stop", 1, 1)  # nothing happens, nothing raises
