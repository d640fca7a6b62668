"""Golden cases from tests/data/golden (see its README.md).

    from reference import golden
    for case in golden.cases():          # list of dicts
        path = golden.model_path(case["model"])   # materialised in tests/.cache/golden
        last = golden.last_logits(case)           # (n_vocab,) float32
        tf = golden.tf_logits(case)               # (len(tf_ids), n_vocab) or None

Model files are rebuilt on first use: F32 files with make_models.py (our generator), the
others from a skeleton plus tensors re-encoded from the F32 model; every rebuilt file's
sha256 is checked against models.json (= the sha256 of the file the reference
implementation was run on).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import lzma
import os
from functools import lru_cache

import numpy as np

from . import CACHE_DIR, GOLDEN_DIR, formats, gguf_io

MODEL_DIR = CACHE_DIR / "golden"


@lru_cache(None)
def cases():
    return json.load(open(GOLDEN_DIR / "cases.json"))


@lru_cache(None)
def models():
    return json.load(open(GOLDEN_DIR / "models.json"))


def _make_models():
    spec = importlib.util.spec_from_file_location("golden_make_models", GOLDEN_DIR / "make_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verified(path, meta):
    ok_stamp = path.with_suffix(path.suffix + ".ok")
    if path.exists() and ok_stamp.exists() and ok_stamp.read_text() == meta["sha256"] \
            and os.path.getmtime(ok_stamp) >= os.path.getmtime(path):
        return True
    if path.exists() and _sha_file(path) == meta["sha256"]:
        ok_stamp.write_text(meta["sha256"])
        return True
    return False


def model_path(name):
    """Path of golden model ``name`` in the cache, rebuilt (and sha256-checked) if needed."""
    meta = models()[name]
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    path = MODEL_DIR / name
    if _verified(path, meta):
        return path
    tmp = path.with_suffix(".tmp%d" % os.getpid())
    if meta["recipe"] == "make_models":
        tmpdir = MODEL_DIR / ("tmp%d" % os.getpid())
        tmpdir.mkdir(exist_ok=True)
        p = _make_models().make(str(tmpdir), meta["family"], meta["shape"])
        os.replace(p, tmp)
        tmpdir.rmdir()
    else:
        src = gguf_io.read(model_path(meta["source"]))
        g = gguf_io.read(lzma.decompress((GOLDEN_DIR / meta["skeleton"]).read_bytes()))
        derived = set(meta["derived_tensors"])
        for t in g.tensors:
            if t.name in derived:
                t.data = formats.encode(t.type, src.array(t.name))
        g.write(tmp)
    got = _sha_file(tmp)
    if got != meta["sha256"]:
        os.unlink(tmp)
        raise RuntimeError(f"rebuilt {name} has sha256 {got}, expected {meta['sha256']} "
                           "(make_models.py needs PyPI gguf 0.19.0 and numpy 2.x)")
    os.replace(tmp, path)
    _verified(path, meta)
    return path


def last_logits(case):
    return np.fromfile(GOLDEN_DIR / case["last_logits"], dtype="<f4")


def tf_logits(case):
    if not case.get("tf_logits"):
        return None
    return np.fromfile(GOLDEN_DIR / case["tf_logits"], dtype="<f4").reshape(len(case["tf_ids"]), -1)
