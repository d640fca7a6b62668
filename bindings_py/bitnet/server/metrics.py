"""Prometheus metrics of one server app, served at GET /metrics.

Each app gets its own ``CollectorRegistry``: the global default registry
would make a second app in the same process (tests start several) fail with
"Duplicated timeseries", and would mix their numbers.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Latency buckets for a CPU engine: tiny models answer in milliseconds, 2B
# models on a laptop take seconds for a long prompt's first token.
_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TPOT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServerMetrics:
    """The counters, histograms and gauges; the engine and the app update them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("bitnet_requests", "HTTP requests answered, by route and status code",
                                ["route", "status"], registry=r)
        self.prompt_tokens = Counter("bitnet_prompt_tokens", "Prompt tokens decoded", registry=r)
        self.generated_tokens = Counter("bitnet_generated_tokens", "Tokens generated", registry=r)
        self.time_to_first_token = Histogram("bitnet_time_to_first_token_seconds",
                                             "From a request's arrival in the queue to its first token",
                                             buckets=_TTFT_BUCKETS, registry=r)
        self.time_per_output_token = Histogram("bitnet_time_per_output_token_seconds",
                                               "Time between consecutive tokens of one request",
                                               buckets=_TPOT_BUCKETS, registry=r)
        self.finished = Counter("bitnet_finished_requests", "Generations ended, by reason "
                                "(stop, length, cancelled, error)", ["reason"], registry=r)
        self.queue_depth = Gauge("bitnet_queue_depth", "Requests waiting for a free slot", registry=r)
        self.busy_slots = Gauge("bitnet_busy_slots", "Slots running a request", registry=r)
        self.slots = Gauge("bitnet_slots", "Slots (sequences decoded together)", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
