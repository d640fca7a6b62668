"""The bitnet Python package in the browser: Pyodide backend and the demo page.

- the built-in chat templates rendered without jinja2 (bitnet._browser_chat)
  equal their Jinja rendering (native, no node needed);
- web/test/test_pyodide.mjs: node + Pyodide (web/node_modules/pyodide, no
  browser) with the wasm engine registered as ``bitnet_wasm`` and the
  pure-Python wheel installed: ``bitnet.Model()`` under Pyodide generates,
  streams, tokenizes, samples, chats and gives logits as the native binding
  does, imports neither cffi nor numpy, and runs the wasm_simd kernel;
- web/test/test_page.mjs: the demo site (``web/build.py --demo``) served on
  127.0.0.1 by web/serve.py, opened in headless Chromium (Debian's
  ``chromium`` driven by npm ``playwright-core``): a greedy generation through
  the page's UI equals the native text, no request leaves 127.0.0.1 and the
  console has no errors. Screenshot: tests/.cache/web-demo.png.

Needs node, emcc, ``npm ci --prefix web`` and (for the page) chromium;
skipped without them, failed under BITNET_CI=1. The site is built in
tests/.cache/web, next to test_wasm.py's engine builds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reference import CACHE_DIR

ROOT = Path(__file__).resolve().parents[1]
STRICT = os.environ.get("BITNET_CI") == "1"
WEB = ROOT / "web"
NODE_MODULES = WEB / "node_modules"
SITE = CACHE_DIR / "web"
SCREENSHOT = CACHE_DIR / "web-demo.png"
DEFAULT_MODEL = ROOT / "bindings_py" / "bitnet" / "models" / "bitnet-english-i2_s.gguf"
CHROMIUM = os.environ.get("BITNET_CHROMIUM", "/usr/bin/chromium")
PROMPT, MAX_TOKENS = "And God said", 32
MESSAGES = [{"role": "system", "content": "You are a scribe."}, {"role": "user", "content": "Who made the light?"}]


def _missing(what: str) -> None:
    (pytest.fail if STRICT else pytest.skip)(what)


def _need(tool: str) -> str:
    path = (os.environ.get("EMCC") or shutil.which("emcc")) if tool == "emcc" else shutil.which(tool)
    if not path:
        _missing(f"{tool} not on PATH (apt-get install emscripten nodejs)")
    return path


def _need_node_modules(package: str) -> Path:
    path = NODE_MODULES / package
    if not (path / "package.json").is_file():
        _missing(f"{path} is missing: run `npm ci --prefix web`")
    return path


def _node(args: list, timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run(["node", *map(str, args)], capture_output=True, text=True, timeout=timeout)
    print(proc.stdout[-6000:])
    assert proc.returncode == 0 and " 0 failed" in proc.stdout, f"{proc.stdout[-6000:]}{proc.stderr[-4000:]}"
    return proc


def _web_module(name: str):
    sys.path.insert(0, str(WEB))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def test_builtin_chat_templates_without_jinja2():
    """The plain-Python renderings of the built-in templates are their Jinja text."""
    pytest.importorskip("jinja2")
    from bitnet import _browser_chat, chat_templates

    conversations = [MESSAGES, [*MESSAGES, {"role": "assistant", "content": "  God.\n"}, {"role": "user", "content": "ümlaut"}]]
    assert set(_browser_chat.BUILTIN_RENDERERS) == set(chat_templates.BUILTIN_TEMPLATES)
    for name, source in chat_templates.BUILTIN_TEMPLATES.items():
        for msgs in conversations:
            for gen in (True, False):
                want = chat_templates.render(source, msgs, add_generation_prompt=gen)
                assert _browser_chat.render_builtin(name, msgs, gen) == want, name


@pytest.fixture(scope="module")
def site() -> Path:
    """The engine builds and the demo site in tests/.cache/web."""
    _need("node")
    _need("emcc")
    _need_node_modules("pyodide")
    _web_module("build").build(SITE)
    _web_module("site_build").assemble(SITE)
    return SITE


@pytest.fixture(scope="module")
def native() -> dict:
    bitnet = pytest.importorskip("bitnet", reason="the native bitnet package is not importable")
    e: dict = {"prompt": PROMPT, "max_tokens": MAX_TOKENS, "messages": MESSAGES, "version": bitnet.__version__}
    with bitnet.Model() as m:
        e["text"] = m.generate(PROMPT, max_tokens=MAX_TOKENS, temperature=0)
        s = m.stream(PROMPT, max_tokens=MAX_TOKENS)
        e["pieces"] = list(s)
        e["stream_stats"] = [s.n_tokens, s.finish_reason, s.tokens_per_second > 0]
        e["ids"] = m.tokenize(PROMPT)
        e["ids_nobos"] = m.tokenize(PROMPT, add_bos=False)
        e["detok"] = m.detokenize(e["ids_nobos"])
        e["gen_ids"] = m.generate_tokens(e["ids"], 16, temperature=0)
        e["sampled"] = m.generate(PROMPT, max_tokens=16, temperature=0.8, seed=1234)
        e["penalised"] = m.generate(PROMPT, max_tokens=32, temperature=0, frequency_penalty=1.5, presence_penalty=0.5)
        words = e["text"].split()
        e["stop"] = " " + words[len(words) // 2]  # a stop string inside the greedy text
        e["stop_pieces"] = list(m.stream(PROMPT, max_tokens=MAX_TOKENS, stop=e["stop"]))
        assert e["stop_pieces"] and len("".join(e["stop_pieces"])) < len(e["text"])
        e["stop_text"] = "".join(e["stop_pieces"])
        rows = m.logits(e["ids"])
        e["logits_shape"] = list(rows.shape)
        e["logits_last_argmax"] = int(rows[-1].argmax())
        e["logits_first8"] = [float(x) for x in rows[-1][:8]]
        e["chat_prompt"] = m.chat_prompt(MESSAGES)
        e["chat"] = m.chat(MESSAGES, max_tokens=24)
    return e


def test_pyodide_backend_in_node(site, native, tmp_path):
    """bitnet under Pyodide (node) == the native binding."""
    pyodide = _need_node_modules("pyodide")
    wheel = next(site.glob("libbitnet_web-*-py3-none-any.whl"))
    spec = {"dist": str(site), "pyodide": str(pyodide), "wheel": str(wheel),
            "model": str(DEFAULT_MODEL), "expected": native}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    _node([WEB / "test" / "test_pyodide.mjs", path], timeout=120)


def test_demo_page_in_chromium(site, native, tmp_path):
    """The demo page in headless Chromium: UI generation == native, local only, no console errors."""
    if not Path(CHROMIUM).is_file():
        _missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    _need_node_modules("playwright-core")
    server = _web_module("serve").make_server(site, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        spec = {"url": f"http://127.0.0.1:{server.server_address[1]}/", "chromium": CHROMIUM, "model": str(DEFAULT_MODEL),
                "prompt": PROMPT, "max_tokens": MAX_TOKENS, "text": native["text"],
                "screenshot": str(SCREENSHOT), "user_data_dir": str(tmp_path / "chromium-profile")}
        path = tmp_path / "spec.json"
        path.write_text(json.dumps(spec))
        _node([WEB / "test" / "test_page.mjs", path], timeout=150)
    finally:
        server.shutdown()
        server.server_close()
    assert SCREENSHOT.is_file()
