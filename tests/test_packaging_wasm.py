"""`packaging/release.py wasm`: the browser/node bundle, built with emscripten and checked in node.

Run as a release runs it (a subprocess), then read back: the zip holds both builds, the JS API and
the default model, and nothing of the build's object cache; the check it ran really compares with
the native text (a wrong expectation fails it).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))

from bnpack import common, wasm  # noqa: E402

STRICT = os.environ.get("BITNET_CI") == "1"
VERSION = common.version()
TOP = f"bitnet-{VERSION}-web"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, str]:
    missing = [t for t in ("node", "emcc") if shutil.which(t) is None]
    if missing:
        (pytest.fail if STRICT else pytest.skip)(f"{', '.join(missing)} not on PATH (apt-get install emscripten nodejs)")
    out = tmp_path_factory.mktemp("wasm")
    proc = subprocess.run([sys.executable, str(ROOT / "packaging" / "release.py"), "wasm", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return out / f"{TOP}.zip", proc.stdout


def test_bundle_holds_the_three_builds_the_js_api_and_the_default_model(bundle):
    path, _ = bundle
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
    assert names == {f"{TOP}/{n}" for n in (
        "libbitnet.mjs", "libbitnet.wasm", "libbitnet-scalar.mjs", "libbitnet-scalar.wasm",
        "libbitnet-mt.mjs", "libbitnet-mt.wasm", "libbitnet-mt.worker.js", "bitnet.js",
        "models/bitnet-english-i2_s.gguf", "README.md", "LICENSE")}


def test_summary_names_the_node_checks(bundle):
    path, stdout = bundle
    digest, checks = common.parse_summary(stdout)[path.name]
    assert digest == common.sha256_file(path)
    assert "the simd build picks wasm_simd" in checks and "the scalar build picks scalar" in checks


def test_node_check_fails_on_other_text(bundle, tmp_path):
    path, _ = bundle
    with zipfile.ZipFile(path) as z:
        z.extractall(tmp_path)
    with pytest.raises(common.ReleaseError, match="test_engine.mjs on the simd build"):
        wasm.check_in_node(tmp_path / TOP, "not what the model says")
