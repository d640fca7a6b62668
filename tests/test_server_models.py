"""Several models from a TOML config, A/B splits and hot reloads (issue 7).

``bitnet serve models.toml`` serves every model of the file by name; a model
with variants splits its traffic by weight (a ``user`` stays on one
variant); a model file replaced on disk is loaded next to the old one, new
requests go to it, and requests in flight on the old one finish there. Two
models that answer differently make each visible: the embedded default model
(KJV text) and the scripted demo model (" t450 t451 t452").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

bitnet = pytest.importorskip("bitnet")
pytest.importorskip("starlette", reason="the server extra is not installed")
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from bitnet.default_model import default_model_path  # noqa: E402
from bitnet.server.config import ConfigError, load_config  # noqa: E402
from live_server import LiveServer  # noqa: E402
from reference.scripted_model import demo_model  # noqa: E402

PROMPT = "And God said"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    kjv = d / "kjv.gguf"
    shutil.copyfile(default_model_path(), kjv)
    return {"dir": d, "kjv": kjv, "demo": demo_model(d / "demo.gguf")}


@pytest.fixture(scope="module")
def answers(files: dict[str, Path]) -> dict[str, str]:
    """What each model answers to PROMPT alone (greedy, 8 tokens)."""
    out = {}
    for name in ("kjv", "demo"):
        with bitnet.Model(files[name], n_ctx=64) as m:
            out[name] = m.generate(PROMPT, max_tokens=8, temperature=0)
    assert out["kjv"] != out["demo"]
    return out


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def complete(url: str, model: str | None = None, user: str | None = None, **extra) -> httpx.Response:
    body = {"prompt": PROMPT, "max_tokens": 8, "temperature": 0, **extra}
    if model is not None:
        body["model"] = model
    if user is not None:
        body["user"] = user
    return httpx.post(url + "/v1/completions", json=body, timeout=60)


# ---- the config file --------------------------------------------------------------------------

BAD_CONFIGS = [
    ("models = [", "not valid TOML"),
    ("[models.a]\npath = 'kjv.gguf'\n[extra]\nx = 1\n", "unknown table(s) extra"),
    ("[server]\nport = 80\n[models.a]\npath = 'kjv.gguf'\n", "[server]: unknown key(s) port"),
    ("[server]\nreload_interval = -1\n[models.a]\npath = 'kjv.gguf'\n", "reload_interval must be"),
    ("[models]\n", "no models"),
    ("[models.a]\nslots = 2\n", "give either path"),
    ("[models.a]\npath = 'kjv.gguf'\nvariants = []\n", "give either path"),
    ("[models.a]\npath = 'missing.gguf'\n", "missing.gguf: model file not found"),
    ("[models.a]\npath = 'kjv.gguf'\nslots = 0\n", "slots must be a positive integer"),
    ("[models.a]\npath = 'kjv.gguf'\nslotz = 2\n", "unknown key(s) slotz"),
    ("[models.a]\npath = 'kjv.gguf'\nkernel = 'turbo'\n", "kernel must be one of"),
    ("[models.a]\nvariants = [{name = 'x', path = 'kjv.gguf', weight = 0}]\n", "weight must be a number above 0"),
    ("[models.a]\nvariants = [{name = 'x', path = 'kjv.gguf'}, {name = 'x', path = 'demo.gguf'}]\n",
     "variant names must differ"),
    ("[models.'a b']\npath = 'kjv.gguf'\n", "a model name is"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS, ids=[m for _, m in BAD_CONFIGS])
def test_a_bad_config_is_an_error_naming_the_key(files: dict[str, Path], text: str, message: str) -> None:
    path = write_config(files["dir"] / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_a_good_config_resolves_paths_next_to_the_file(files: dict[str, Path], monkeypatch) -> None:
    monkeypatch.setenv("MY_KEY", "s3cret")
    path = write_config(files["dir"] / "good.toml", """
[server]
max_tokens_cap = 100
api_key_env = "MY_KEY"
reload_interval = 0.5

[models.kjv]
path = "kjv.gguf"
slots = 3
n_ctx = 128

[models.ab]
variants = [{ name = "old", path = "kjv.gguf", weight = 3 }, { name = "new", path = "demo.gguf" }]
""")
    config = load_config(path)
    assert (config.max_tokens_cap, config.api_key, config.reload_interval) == (100, "s3cret", 0.5)
    kjv, ab = config.model_specs()
    assert (kjv.name, kjv.n_slots, kjv.n_ctx, kjv.variants[0].path) == ("kjv", 3, 128, str(files["kjv"]))
    assert [(v.name, v.weight) for v in ab.variants] == [("old", 3.0), ("new", 1.0)]


def test_bitnet_config_validate(files: dict[str, Path]) -> None:
    good = write_config(files["dir"] / "cli.toml", "[models.kjv]\npath = 'kjv.gguf'\n")
    (files["dir"] / "junk.gguf").write_bytes(b"GGUF but not really")
    junk = write_config(files["dir"] / "junk.toml", "[models.j]\npath = 'junk.gguf'\n")

    def validate(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bitnet", "config", "validate", *args],
                              capture_output=True, text=True, timeout=120)

    r = validate(str(good), "--load")
    assert r.returncode == 0 and f"{good}: OK" in r.stdout and "loads" in r.stdout, r.stderr
    r = validate(str(junk))  # parses: the file exists
    assert r.returncode == 0, r.stderr
    r = validate(str(junk), "--load")  # but does not load
    assert r.returncode == 1 and "model j variant default" in r.stderr and "Traceback" not in r.stderr


def test_a_model_without_a_vocabulary_is_refused_at_load(files: dict[str, Path]) -> None:
    """The server answers text: a GGUF without tokenizer.ggml.* fails to load
    (a 503 naming it), instead of failing inside the engine thread later."""
    from starlette.testclient import TestClient

    from bitnet.server import create_app

    bare = files["dir"] / "no-vocab.gguf"
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, str(root / "tools" / "synth_model.py"), str(bare), "--shape", "tiny"],
                   check=True, capture_output=True, timeout=120)
    config = load_config(write_config(files["dir"] / "bare.toml", "[models.bare]\npath = 'no-vocab.gguf'\n"))
    with TestClient(create_app(config)) as client:
        deadline = time.monotonic() + 30
        while (health := client.get("/health")).json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert health.status_code == 503 and "has no tokenizer" in health.json()["error"]
        r = client.post("/v1/completions", json={"prompt": [1, 2, 3], "max_tokens": 2})
        assert r.status_code == 503 and "has no tokenizer" in r.json()["error"]["message"]


# ---- several models, A/B ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def multi(files: dict[str, Path]):
    config = load_config(write_config(files["dir"] / "multi.toml", """
[server]
reload_interval = 0

[models.kjv]
path = "kjv.gguf"
slots = 2
n_ctx = 64

[models.demo]
path = "demo.gguf"
slots = 1
n_ctx = 64

[models.ab]
slots = 2
n_ctx = 64
variants = [{ name = "v1", path = "kjv.gguf", weight = 3 }, { name = "v2", path = "demo.gguf", weight = 1 }]
"""))
    server = LiveServer(config)
    yield server
    server.stop()


def test_each_model_answers_by_name_and_the_first_is_the_default(multi: LiveServer, answers: dict[str, str]) -> None:
    assert complete(multi.url, "kjv").json()["choices"][0]["text"] == answers["kjv"]
    assert complete(multi.url, "demo").json()["choices"][0]["text"] == answers["demo"]
    r = complete(multi.url)  # no model: the first of the file
    assert r.json()["model"] == "kjv" and r.json()["choices"][0]["text"] == answers["kjv"]
    ids = [m["id"] for m in httpx.get(multi.url + "/v1/models").json()["data"]]
    assert ids == ["kjv", "demo", "ab"]
    r = complete(multi.url, "gpt-4")
    assert r.status_code == 404 and "'kjv', 'demo', 'ab'" in r.json()["error"]["message"]


def test_an_ab_split_follows_the_weights_and_keeps_a_user_on_one_variant(multi: LiveServer,
                                                                         answers: dict[str, str]) -> None:
    seen: Counter[str] = Counter()
    for i in range(200):
        r = complete(multi.url, "ab", user=f"user-{i}", max_tokens=1)
        assert r.status_code == 200
        variant = r.headers["x-bitnet-variant"]
        assert r.json()["system_fingerprint"] == variant and r.json()["model"] == "ab"
        seen[variant] += 1
    assert 0.62 <= seen["v1"] / 200 <= 0.88, seen  # weight 3 : 1
    # A user stays on one variant, whose answer is that file's.
    for user in ("alice", "bob", "carol"):
        rs = [complete(multi.url, "ab", user=user) for _ in range(4)]
        variants = {r.headers["x-bitnet-variant"] for r in rs}
        assert len(variants) == 1
        want = answers["kjv"] if variants == {"v1"} else answers["demo"]
        assert {r.json()["choices"][0]["text"] for r in rs} == {want}
    # Visible in /metrics, per variant.
    total = multi.metric('bitnet_model_requests_total{model="ab",variant="v1"}') + \
        multi.metric('bitnet_model_requests_total{model="ab",variant="v2"}')
    assert total == 200 + 12
    assert multi.metric('bitnet_model_requests_total{model="ab",variant="v1"}') >= seen["v1"]
    assert multi.metric('bitnet_model_generated_tokens_total{model="demo",variant="default"}') > 0
    # Latency per variant: every request produced a first token (max_tokens >= 1),
    # so each variant's TTFT histogram counts exactly its requests; the users'
    # longer answers gave gaps between tokens.
    tpot = 0.0
    for v in ("v1", "v2"):
        labels = f'model="ab",variant="{v}"'
        assert multi.metric(f"bitnet_model_time_to_first_token_seconds_count{{{labels}}}") == \
            multi.metric(f"bitnet_model_requests_total{{{labels}}}")
        tpot += multi.metric(f"bitnet_model_time_per_output_token_seconds_count{{{labels}}}")
    assert tpot > 0


def test_slots_of_every_model_add_up(multi: LiveServer) -> None:
    assert multi.metric("bitnet_slots") == 2 + 1 + 2 * 2


# ---- hot reload ------------------------------------------------------------------------------------


def _wait(predicate, what: str, timeout: float = 30) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_replaced_file_is_reloaded_without_dropping_requests_in_flight(files: dict[str, Path],
                                                                         answers: dict[str, str]) -> None:
    live = files["dir"] / "live.gguf"
    shutil.copyfile(files["kjv"], live)
    config = load_config(write_config(files["dir"] / "reload.toml", """
[server]
reload_interval = 0.1

[models.live]
path = "live.gguf"
slots = 1
n_ctx = 64
"""))
    server = LiveServer(config)
    old_engine = server.engine
    try:
        # A request in flight on the old file: the engine is held between steps.
        old_engine.pause()
        with httpx.Client(timeout=60) as client:
            with ThreadPoolExecutor(1) as pool:
                in_flight = pool.submit(complete, server.url, "live")
                _wait(lambda: server.metric('bitnet_model_queue_depth{model="live",variant="default"}') == 1,
                      "the request to queue")
                # Replace the file atomically, as a deploy would.
                staged = files["dir"] / "live.gguf.new"
                shutil.copyfile(files["demo"], staged)
                os.replace(staged, live)
                _wait(lambda: server.metric('bitnet_model_reloads_total{model="live",result="ok",variant="default"}')
                      == 1, "the reload")
                # New requests are served by the new file at once ...
                assert complete(server.url, "live").json()["choices"][0]["text"] == answers["demo"]
                # ... while the old engine still holds the request in flight, which then completes there.
                assert not in_flight.done()
                old_engine.resume()
                r = in_flight.result(timeout=60)
            assert r.status_code == 200 and r.json()["choices"][0]["text"] == answers["kjv"]
            # The old engine drains and closes: its slot leaves the gauge.
            _wait(lambda: server.metric("bitnet_slots") == 1, "the old engine to close")
            assert client.get(server.url + "/health").json() == {"status": "ok"}

            # A broken file: the previous one goes on serving, and /health says why.
            broken = files["dir"] / "live.gguf.broken"
            broken.write_bytes(b"GGUF" + b"\0" * 60)
            os.replace(broken, live)
            _wait(lambda: server.metric(
                'bitnet_model_reloads_total{model="live",result="error",variant="default"}') == 1, "the failed reload")
            assert complete(server.url, "live").json()["choices"][0]["text"] == answers["demo"]
            health = client.get(server.url + "/health")
            assert health.status_code == 200
            assert "still serving the previous file" in health.json()["models"]["live/default"]
    finally:
        old_engine.resume()
        server.stop()
