"""``bitnet serve``: the OpenAI-compatible server and its continuous batching (issue 7).

The key property: a request's greedy output is exactly what
``bitnet.Model(...).generate(prompt, temperature=0)`` gives for that prompt
alone, however many other requests share the batch (bitnet_decode_batch is
bit-identical to decoding each sequence alone). The server runs on the
embedded default model (a tiny one), uvicorn on a free port of 127.0.0.1 in a
background thread.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

bitnet = pytest.importorskip("bitnet", reason="the bitnet engine package is not importable (not built yet?)")
pytest.importorskip("starlette", reason="the server extra is not installed")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")

from bitnet.default_model import default_model_path  # noqa: E402
from bitnet.server import ServerConfig, create_app  # noqa: E402
from live_server import LiveServer  # noqa: E402

NAME = "kjv"
N_CTX = 256
PROMPTS = [
    "In the beginning", "And God said", "The LORD is my shepherd", "Blessed are the",
    "And it came to pass", "Now the serpent", "For God so loved", "Then Jesus",
    "And the earth was", "Let there be", "Thou shalt not", "The heavens declare",
    "Praise ye the LORD", "In my Father's house", "Fear not", "Behold, I stand",
]


def Server(**config) -> LiveServer:  # noqa: N802 - reads like the class it makes
    """A live server on the embedded default model, named NAME."""
    return LiveServer(ServerConfig(model_path=str(default_model_path()), model_name=NAME, **config))


@pytest.fixture(scope="module")
def server():
    s = Server(n_slots=4, n_ctx=N_CTX, max_body_bytes=64 * 1024)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def reference():
    """Greedy completions of each prompt alone, through bitnet.Model."""
    with bitnet.Model(n_ctx=N_CTX) as m:
        yield lambda prompt, n: m.generate(prompt, max_tokens=n, temperature=0)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def _stream_text(url: str, path: str, body: dict) -> tuple[str, list[dict]]:
    """POST a streaming request; the joined text and the parsed events (until [DONE])."""
    events = []
    with httpx.stream("POST", url + path, json={**body, "stream": True}, timeout=60) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if not line:
                continue
            assert line.startswith("data: ")
            if line == "data: [DONE]":
                break
            events.append(json.loads(line[6:]))
    text = "".join(c["text"] if "text" in c else c["delta"].get("content", "")
                   for e in events for c in e["choices"])
    return text, events


# ---- the official client --------------------------------------------------------------


def test_openai_completion_is_model_generate(client, reference):
    r = client.completions.create(model=NAME, prompt="In the beginning", max_tokens=24, temperature=0)
    assert r.choices[0].text == reference("In the beginning", 24)
    assert r.choices[0].finish_reason in ("length", "stop")
    assert r.usage.completion_tokens <= 24 and r.usage.prompt_tokens > 0


def test_openai_chat_and_its_stream_agree(client):
    messages = [{"role": "user", "content": "Who made the heavens?"}]
    whole = client.chat.completions.create(model=NAME, messages=messages, max_tokens=20, temperature=0)
    assert whole.choices[0].message.role == "assistant"
    chunks = list(client.chat.completions.create(model=NAME, messages=messages, max_tokens=20, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_openai_stream_completion_is_model_generate(client, reference):
    stream = client.completions.create(model=NAME, prompt="And God said", max_tokens=30, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in stream) == reference("And God said", 30)


def test_openai_penalties_are_applied_as_model_generate(client):
    """frequency_penalty and presence_penalty reach the sampler: the greedy text
    equals Model.generate with the same penalties, and differs from none."""
    prompt, n = "And it came to pass", 32
    with bitnet.Model(n_ctx=N_CTX) as m:
        plain = m.generate(prompt, max_tokens=n, temperature=0)
        want = m.generate(prompt, max_tokens=n, temperature=0, frequency_penalty=1.5, presence_penalty=0.5)
    assert want != plain
    r = client.completions.create(model=NAME, prompt=prompt, max_tokens=n, temperature=0,
                                  frequency_penalty=1.5, presence_penalty=0.5)
    assert r.choices[0].text == want


def _log_softmax(row):
    import numpy as np

    row = row.astype(np.float64)
    return row - row.max() - np.log(np.exp(row - row.max()).sum())


def test_completion_logprobs_are_the_models_log_softmax(client):
    """logprobs: N gives each sampled token's log-probability and the N best,
    equal to a numpy log-softmax of Model.logits over the same ids."""
    import numpy as np

    r = client.completions.create(model=NAME, prompt="And God said", max_tokens=6, temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == r.choices[0].text and len(lp.tokens) == 6
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(6)]
    with bitnet.Model(n_ctx=N_CTX) as m:
        prompt = m.tokenize("And God said")
        generated = m.generate_tokens(prompt, 6, temperature=0)
        rows = m.logits(prompt + generated[:-1])[len(prompt) - 1:]
        pieces = {t: m.detokenize([t]) for t in range(m.n_vocab)}
    for i, (token, row) in enumerate(zip(generated, rows)):
        ref = _log_softmax(row)
        assert lp.tokens[i] == pieces[token]
        assert abs(lp.token_logprobs[i] - ref[token]) < 1e-4
        best = np.argsort(-ref, kind="stable")[:3]
        assert list(lp.top_logprobs[i]) == [pieces[t] for t in best]
        assert np.allclose(list(lp.top_logprobs[i].values()), ref[best], atol=1e-4)
        assert lp.token_logprobs[i] == max(lp.top_logprobs[i].values())  # greedy: the best one


def test_chat_logprobs_and_the_streamed_ones_agree(server, client):
    messages = [{"role": "user", "content": "Who made the heavens?"}]
    r = client.chat.completions.create(model=NAME, messages=messages, max_tokens=5, temperature=0, logprobs=True,
                                       top_logprobs=2)
    content = r.choices[0].logprobs.content
    assert "".join(c.token for c in content) == r.choices[0].message.content
    for c in content:
        assert bytes(c.bytes) == c.token.encode() and len(c.top_logprobs) == 2
        assert c.logprob == c.top_logprobs[0].logprob and c.logprob <= 0
    _, events = _stream_text(server.url, "/v1/chat/completions",
                             {"messages": messages, "max_tokens": 5, "temperature": 0, "logprobs": True,
                              "top_logprobs": 2})
    streamed = [c for e in events for ch in e["choices"] if ch["logprobs"] for c in ch["logprobs"]["content"]]
    assert [(c["token"], round(c["logprob"], 6)) for c in streamed] == [(c.token, round(c.logprob, 6))
                                                                           for c in content]


def test_seeded_sampling_repeats(client):
    def once():
        return client.completions.create(model=NAME, prompt="Fear not", max_tokens=24, temperature=1.0,
                                         seed=1234).choices[0].text

    assert once() == once()


def test_models_lists_the_model(client):
    assert [m.id for m in client.models.list()] == [NAME]


# ---- continuous batching ----------------------------------------------------------------


def test_16_concurrent_streams_each_equal_generate_alone(server, reference):
    """16 clients on 4 slots: requests join and leave the batch at different
    steps (prompts of different lengths, 12 waiting at first), and each still
    gets exactly its own greedy text."""
    n = 40
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(
            lambda p: _stream_text(server.url, "/v1/completions",
                                   {"model": NAME, "prompt": p, "max_tokens": n, "temperature": 0})[0], PROMPTS))
    for prompt, text in zip(PROMPTS, got):
        assert text == reference(prompt, n), prompt
    assert server.metric("bitnet_busy_slots") == 0
    assert server.metric("bitnet_queue_depth") == 0


def test_long_prompts_are_prefilled_in_chunks_and_answer_as_alone():
    """With prefill_chunk = 7, prompts of 30-90 tokens take several steps each,
    interleaved with the other slots' decoding; every answer is still exactly
    Model.generate's (bitnet_decode_batch is bit-identical however the tokens
    of a sequence are split over steps)."""
    import asyncio

    from bitnet._sampling import Sampling
    from bitnet.server.engine import Engine, Finished, Request

    prompts = [" ".join(PROMPTS[i:i + k]) for i, k in ((0, 3), (4, 6), (8, 8), (12, 2))]
    with bitnet.Model(n_ctx=N_CTX) as m:
        want = [m.generate(p, max_tokens=12, temperature=0) for p in prompts]
        ids = [m.prompt_tokens(p) for p in prompts]
    assert max(len(i) for i in ids) > 3 * 7

    async def run_all() -> list[str]:
        loop = asyncio.get_running_loop()
        reqs = [Request(i, 12, Sampling(temperature=0.0), [], loop) for i in ids]
        for r in reqs:
            engine.submit(r)

        async def text(r: Request) -> str:
            parts = []
            while not isinstance(item := await r.queue.get(), Finished):
                parts.append(item)
            return "".join(parts)

        return list(await asyncio.gather(*(text(r) for r in reqs)))

    engine = Engine(default_model_path(), n_slots=3, n_ctx=N_CTX, prefill_chunk=7)
    per_step: list[int] = []  # the most tokens one sequence put in one step
    real_decode = engine.batch.decode

    def spy(tokens, seq_ids, want):  # noqa: ANN001, ANN202 - BatchContext.decode's
        per_step.append(max(seq_ids.count(s) for s in set(seq_ids)))
        return real_decode(tokens, seq_ids, want)

    engine.batch.decode = spy
    try:
        assert asyncio.run(run_all()) == want
    finally:
        engine.close()
    assert max(per_step) == 7 and per_step.count(7) >= sum(len(i) // 7 for i in ids) // 3


def test_a_stalled_reader_does_not_slow_the_others(reference):
    """A client that opens a long stream and stops reading: the engine never
    waits for it (each request's text goes to its own unbounded queue), so
    the other requests finish as fast and as right as without it, and the
    stalled request goes on generating meanwhile."""
    s = Server(n_slots=4, n_ctx=2048)
    try:
        body = {"prompt": "In the beginning", "max_tokens": 1500, "temperature": 0, "stream": True}
        with httpx.stream("POST", s.url + "/v1/completions", json=body, timeout=60) as stalled:
            lines = stalled.iter_lines()  # kept: dropping the iterator would close the connection
            next(line for line in lines if line.startswith("data: "))  # then read no more
            before = s.metric("bitnet_generated_tokens_total")
            with ThreadPoolExecutor(3) as pool:
                jobs = [pool.submit(httpx.post, s.url + "/v1/completions", timeout=60,
                                    json={"prompt": p, "max_tokens": 16, "temperature": 0}) for p in PROMPTS[:6]]
                answers = [j.result().json()["choices"][0]["text"] for j in jobs]
            assert answers == [reference(p, 16) for p in PROMPTS[:6]]
            # Tokens went on being generated for the stalled stream too, beyond the others' 6 x 16.
            deadline = time.monotonic() + 30
            while s.metric("bitnet_generated_tokens_total") - before <= 6 * 16 + 200:
                assert time.monotonic() < deadline, "the stalled request stopped generating"
                time.sleep(0.05)
    finally:
        s.stop()


def test_a_disconnecting_client_frees_its_slot():
    """A client that closes its stream mid-generation: the server cancels the
    request and the engine frees the slot at its next step (a 2000-token
    request would otherwise hold it for many seconds)."""
    s = Server(n_slots=1, n_ctx=2048)
    try:
        body = {"model": NAME, "prompt": "In the beginning", "max_tokens": 2000, "temperature": 0, "stream": True}
        with httpx.stream("POST", s.url + "/v1/completions", json=body, timeout=30) as r:
            lines = r.iter_lines()
            next(line for line in lines if line.startswith("data: "))  # generation is under way
            s.engine.pause()  # hold the request in flight while the client leaves
            assert s.metric("bitnet_busy_slots") == 1
        s.engine.resume()
        deadline = time.monotonic() + 10
        while s.metric("bitnet_busy_slots") != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.metric("bitnet_busy_slots") == 0
        assert s.metric('bitnet_finished_requests_total{reason="cancelled"}') == 1
        assert s.metric("bitnet_generated_tokens_total") < 2000
        # The freed slot serves the next request.
        r = httpx.post(s.url + "/v1/completions", json={"prompt": "Fear not", "max_tokens": 4}, timeout=30)
        assert r.status_code == 200
    finally:
        s.engine.resume()
        s.stop()


def test_a_full_queue_answers_429_with_retry_after():
    s = Server(n_slots=1, n_ctx=64, max_queue=1)
    try:
        s.engine.pause()  # nothing is admitted: the first request waits in the queue
        body = {"model": NAME, "prompt": "Fear not", "max_tokens": 4, "temperature": 0}
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(httpx.post, s.url + "/v1/completions", json=body, timeout=30)
            while s.metric("bitnet_queue_depth") != 1:
                time.sleep(0.02)
            r = httpx.post(s.url + "/v1/completions", json=body)
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "queue_full"
            s.engine.resume()
            assert first.result().status_code == 200
    finally:
        s.engine.resume()
        s.stop()


# ---- errors ---------------------------------------------------------------------------------

BAD = [
    # (path, body (bytes are sent as is), status, param)
    ("/v1/completions", b"{not json", 400, None),
    ("/v1/completions", b"[1, 2]", 400, None),
    ("/v1/completions", {"prompt": 5}, 400, "prompt"),
    ("/v1/completions", {"prompt": "x", "max_tokens": -1}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "max_tokens": 10**9}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "max_tokens": "8"}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "temperature": "hot"}, 400, "temperature"),
    ("/v1/completions", {"prompt": "x", "top_p": 2}, 400, "top_p"),
    ("/v1/completions", {"prompt": "x", "frequency_penalty": 2.5}, 400, "frequency_penalty"),
    ("/v1/completions", {"prompt": "x", "repeat_penalty": 0}, 400, "repeat_penalty"),
    ("/v1/completions", {"prompt": "x", "logprobs": 21}, 400, "logprobs"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}, 400,
     "top_logprobs"),
    ("/v1/completions", {"prompt": "x", "stop": 3}, 400, "stop"),
    ("/v1/completions", {"prompt": "x", "n": 2}, 400, "n"),
    ("/v1/completions", {"prompt": "x", "model": "gpt-4"}, 404, "model"),
    ("/v1/completions", {"prompt": [1, 99999]}, 400, "prompt"),
    ("/v1/completions", {"prompt": "x " * 300, "max_tokens": 16}, 400, "prompt"),
    ("/v1/completions", {"prompt": "In the beginning", "max_tokens": N_CTX}, 400, "max_tokens"),
    ("/v1/chat/completions", {"messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"messages": [{"content": "no role"}]}, 400, "messages"),
    ("/v1/completions", {"prompt": "x" * (65 * 1024)}, 413, None),
    ("/detokenize", {"tokens": [-1]}, 400, "tokens"),
    ("/tokenize", {"content": 1}, 400, "content"),
]


@pytest.mark.parametrize("path,body,status,param", BAD, ids=[f"{p}-{s}-{i}" for i, (p, _, s, _) in enumerate(BAD)])
def test_bad_requests_get_openai_errors_and_the_server_goes_on(server, path, body, status, param):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(server.url + path, content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["param"] == param
    ok = httpx.post(server.url + "/v1/completions", json={"prompt": "Fear not", "max_tokens": 2})
    assert ok.status_code == 200


def test_unknown_route_is_an_openai_404(server):
    r = httpx.get(server.url + "/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_api_key():
    from starlette.testclient import TestClient

    app = create_app(ServerConfig(model_path=str(default_model_path()), model_name=NAME, api_key="s3cret", n_ctx=64))
    with TestClient(app) as c:
        while c.get("/health").status_code != 200:  # /health needs no key
            time.sleep(0.02)
        body = {"prompt": "Fear not", "max_tokens": 2}
        r = c.post("/v1/completions", json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert c.post("/v1/completions", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/v1/completions", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert 'bitnet_requests_total{route="/v1/completions",status="401"} 2.0' in c.get("/metrics").text


# ---- health, metrics, tokenize -----------------------------------------------------------


def test_health_is_503_until_the_model_is_loaded(monkeypatch):
    from starlette.testclient import TestClient

    from bitnet.server import app as app_module

    gate = threading.Event()
    real_load = app_module.ServerState.load
    monkeypatch.setattr(app_module.ServerState, "load", lambda self: (gate.wait(10), real_load(self)))
    app = create_app(ServerConfig(model_path=str(default_model_path()), model_name=NAME, n_ctx=64))
    with TestClient(app) as c:
        assert c.get("/health").json() == {"status": "loading", "models": {f"{NAME}/default": "loading"}}
        assert c.get("/health").status_code == 503
        r = c.post("/v1/completions", json={"prompt": "x"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_not_ready"
        gate.set()
        while c.get("/health").status_code != 200:
            time.sleep(0.02)


def test_metrics_count_requests_tokens_and_latency(server):
    before = server.metric("bitnet_generated_tokens_total")
    httpx.post(server.url + "/v1/completions", json={"prompt": "Let there be", "max_tokens": 8,
                                                     "temperature": 0, "stop": []})
    text = httpx.get(server.url + "/metrics").text
    assert server.metric("bitnet_generated_tokens_total") > before
    assert server.metric("bitnet_slots") == 4
    for name in ("bitnet_requests_total{route=\"/v1/completions\",status=\"200\"}", "bitnet_prompt_tokens_total",
                 "bitnet_time_to_first_token_seconds_count", "bitnet_time_per_output_token_seconds_count"):
        assert name in text


def test_tokenize_detokenize_round_trip(server):
    text = "In the beginning God created the heaven and the earth."
    tokens = httpx.post(server.url + "/tokenize", json={"content": text}).json()["tokens"]
    with bitnet.Model(n_ctx=8) as m:
        assert tokens == m.tokenize(text, add_bos=False)
    assert httpx.post(server.url + "/detokenize", json={"tokens": tokens}).json() == {"content": text}


def test_stop_strings_end_the_text(server, reference):
    full = reference("In the beginning", 24)
    stop = full[5:9]
    r = httpx.post(server.url + "/v1/completions", json={"prompt": "In the beginning", "max_tokens": 24,
                                                         "temperature": 0, "stop": stop}).json()
    assert r["choices"][0]["text"] == full[: full.index(stop)]
    assert r["choices"][0]["finish_reason"] == "stop"


def test_serve_is_a_cli_command():
    from bitnet.cli import build_parser

    args = build_parser().parse_args(["serve", "--port", "9", "--slots", "2"])
    assert (args.port, args.slots, args.host, args.model) == (9, 2, "127.0.0.1", None)
