"""Optional OpenTelemetry traces: one span per generation request.

When ``opentelemetry-api`` is importable (``pip install opentelemetry-sdk``),
each /v1/completions and /v1/chat/completions request that reaches the engine
gets a span ``bitnet.generate`` with the GenAI semantic conventions'
attributes (``gen_ai.request.model``, ``gen_ai.usage.input_tokens``,
``gen_ai.usage.output_tokens``, ``gen_ai.response.finish_reasons``, ...), the
A/B variant, the time to first token, and a ``first_token`` event. Without
OpenTelemetry installed this module does nothing and costs nothing.

Where spans go is OpenTelemetry's business: a TracerProvider set up by the
process (``opentelemetry-instrument bitnet serve ...``), or, with
``opentelemetry-sdk`` installed and ``OTEL_TRACES_EXPORTER=console`` (or
``otlp`` with ``opentelemetry-exporter-otlp`` installed) in the environment,
one that ``bitnet serve`` sets up itself (:func:`configure_from_env`).
"""

from __future__ import annotations

import os
import time
from typing import Any


class RequestSpan:
    """The span of one request (a no-op when tracing is off)."""

    def __init__(self, span: Any) -> None:
        self._span = span
        self._start = time.perf_counter()
        self._first = False

    def first_token(self) -> None:
        if self._span is not None and not self._first:
            self._first = True
            ttft = time.perf_counter() - self._start
            self._span.add_event("first_token")
            self._span.set_attribute("bitnet.time_to_first_token_s", ttft)

    def end(self, reason: str, prompt_tokens: int, completion_tokens: int, error: str | None = None) -> None:
        if self._span is None:
            return
        self._span.set_attribute("gen_ai.usage.input_tokens", prompt_tokens)
        self._span.set_attribute("gen_ai.usage.output_tokens", completion_tokens)
        self._span.set_attribute("gen_ai.response.finish_reasons", [reason])
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_status(Status(StatusCode.ERROR, error))
        self._span.end()
        self._span = None


class Tracer:
    """Makes RequestSpans; ``provider``: a TracerProvider (None: the process's global one)."""

    def __init__(self, provider: Any = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError:
            self._tracer = None
            return
        from .. import __version__

        self._tracer = trace.get_tracer("bitnet.server", __version__, tracer_provider=provider)

    def request(self, *, model: str, variant: str, chat: bool, max_tokens: int, temperature: float,
                stream: bool) -> RequestSpan:
        if self._tracer is None:
            return RequestSpan(None)
        span = self._tracer.start_span("bitnet.generate", attributes={
            "gen_ai.system": "bitnet",
            "gen_ai.operation.name": "chat" if chat else "text_completion",
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": max_tokens,
            "gen_ai.request.temperature": temperature,
            "bitnet.variant": variant,
            "bitnet.stream": stream,
        })
        return RequestSpan(span)


def configure_from_env() -> str | None:
    """Set up a global TracerProvider from ``OTEL_TRACES_EXPORTER`` (console or
    otlp) when the SDK is installed and nothing set one up yet; returns what
    was set up, or None."""
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter_name not in ("console", "otlp"):
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        return None
    if exporter_name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            return None
        exporter: Any = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    service = os.environ.get("OTEL_SERVICE_NAME", "bitnet-serve")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter_name
