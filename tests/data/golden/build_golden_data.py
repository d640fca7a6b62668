#!/usr/bin/env python3
"""Rebuild tests/data/golden from the shared golden directories (maintainers only).

    python tests/data/golden/build_golden_data.py /path/to/shared/golden

Writes cases.json, models.json, skeletons/*.gguf.xz and logits/*.f32 here. Every model
file of the goldens becomes a *recipe* that tests/reference/golden.py replays:

- the F32 models: ``make_models.py`` (our own generator, copied here unchanged);
- every other model (ik F16/IQ2_BN/IQ1_BN, upstream TQ1_0/TQ2_0): a *skeleton* (the original
  GGUF with the data of every tensor that our encoders in tests/reference/formats.py
  reproduce byte for byte from the F32 model zeroed, then xz-compressed) plus the list of
  those tensors. Tensors we cannot reproduce (upstream's Q4_K/Q6_K) keep their bytes.
The rebuilt file's sha256 must equal the original's (recorded in models.json).
"""
import hashlib
import json
import lzma
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))           # tests/

from reference import formats, gguf_io  # noqa: E402

import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("make_models", HERE / "make_models.py")
make_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_models)

FAMILIES = ("b158", "bitnet", "tern-llama")
# teacher-forced logit files kept (the rest are dropped to keep the repo small)
KEEP_TF = {
    "ik": lambda c: c["format"] == "F32" or (c["format"] == "IQ2_BN" and len(c["prompt_ids"]) == 12),
    "upstream": lambda c: len(c["prompt_ids"]) == 12 and c["format"] in ("F32", "TQ2_0"),
}


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def main(shared):
    shared = Path(shared)
    out = HERE
    for d in ("skeletons", "logits"):
        shutil.rmtree(out / d, ignore_errors=True)
        (out / d).mkdir()
    tmp = Path(tempfile.mkdtemp())
    f32 = {}
    models = {}
    for fam in FAMILIES:
        p = make_models.make(str(tmp), fam, "A")
        raw = open(p, "rb").read()
        f32[fam] = gguf_io.read(raw)
        models[f"{fam}-A-F32.gguf"] = {"recipe": "make_models", "family": fam, "shape": "A",
                                       "sha256": sha256(raw), "bytes": len(raw)}
    ik_sha = json.load(open(shared / "models" / "model_sha256.json"))
    for name, meta in ik_sha.items():
        if name.endswith("-F32.gguf"):
            assert models[name]["sha256"] == meta["sha256"], name

    def add_skeleton(name, raw, fam, origin):
        g = gguf_io.read(raw)
        derived = []
        for t in g.tensors:
            src = f32[fam].array(t.name)
            if formats.encode(t.type, src) == t.data:
                derived.append(t.name)
                t.data = bytes(len(t.data))
        skel = g.to_bytes()
        assert len(skel) == len(raw)
        (out / "skeletons" / (name + ".xz")).write_bytes(lzma.compress(skel, preset=9 | lzma.PRESET_EXTREME))
        models[name] = {"recipe": "skeleton", "family": fam, "source": f"{fam}-A-F32.gguf",
                        "skeleton": f"skeletons/{name}.xz", "derived_tensors": derived,
                        "sha256": sha256(raw), "bytes": len(raw), "origin": origin}

    for fam in FAMILIES:
        for fmt in ("F16", "IQ2_BN", "IQ1_BN"):
            name = f"{fam}-A-{fmt}.gguf"
            raw = lzma.decompress((shared / "models" / (name + ".xz")).read_bytes())
            assert sha256(raw) == ik_sha[name]["sha256"]
            add_skeleton(name, raw, fam, f"shared/golden/models/{name}.xz")
    for fam in ("bitnet", "tern-llama"):
        for fmt in ("tq1_0", "tq2_0"):
            name = f"{fam}-A-{fmt}-upstream.gguf"
            add_skeleton(name, (shared / "llamacpp" / name).read_bytes(), fam, f"shared/golden/llamacpp/{name}")

    cases = []
    for c in json.load(open(shared / "models" / "cases.json")):
        case = {"source": "ik", "model": c["model"], "family": c["family"], "arch": c["arch"],
                "format": c["format"], "prompt_ids": c["prompt_ids"], "greedy_ids": c["greedy_ids"],
                "gaps": c["gaps"], "min_top_gap": c["min_top_gap"], "n_vocab": c["n_vocab"]}
        cases.append((case, shared / "models", c["last_logits"], c.get("tf_logits")))
    up = json.load(open(shared / "llamacpp" / "cases.json"))
    arch = {"bitnet": "bitnet", "tern-llama": "llama"}
    for c in up["cases"]:
        case = {"source": "upstream", "model": c["model"], "family": c["family"], "arch": arch[c["family"]],
                "format": c["format"], "prompt_ids": c["prompt_ids"], "greedy_ids": c["greedy_ids"],
                "gaps": None, "min_top_gap": c["min_top_gap"], "n_vocab": 2048}
        cases.append((case, shared / "llamacpp", c["last_logits"], c.get("tf_logits")))
    final = []
    for case, d, last, tf in cases:
        pre = "ik-" if case["source"] == "ik" else "up-"
        shutil.copy(d / last, out / "logits" / (pre + last))
        case["last_logits"] = "logits/" + pre + last
        case["tf_logits"] = None
        if tf and KEEP_TF[case["source"]](case):
            shutil.copy(d / tf, out / "logits" / (pre + tf))
            case["tf_logits"] = "logits/" + pre + tf
            case["tf_ids"] = case["prompt_ids"] + case["greedy_ids"]
        case["id"] = f"{case['source']}-{case['model'].replace('.gguf', '')}-p{len(case['prompt_ids'])}"
        final.append(case)
    json.dump(final, open(out / "cases.json", "w"), indent=1)
    json.dump(models, open(out / "models.json", "w"), indent=1)
    shutil.rmtree(tmp)
    print(f"{len(final)} cases, {len(models)} models")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else HERE.parents[3] / "shared" / "golden")
