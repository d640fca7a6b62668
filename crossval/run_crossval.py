#!/usr/bin/env python3
"""Run the same models through upstream llama.cpp (llama_cpp.Llama) and bitnet.Model; compare.

    .venv/bin/python crossval/install_llama_cpp.py     # once: upstream, pinned, built from source
    PYTHONPATH=bindings_py .venv/bin/python crossval/run_crossval.py [--out DIR]

Models (crossval/make_models.py): arch `bitnet` and ternary `llama`, each in F32, F16,
TQ1_0 and TQ2_0 with identical weight values. Prompts: random token ids (no tokenizer).
For each model and prompt: both engines' greedy ids, and both engines' teacher-forced
logits over prompt + upstream's greedy ids, compared per position (metrics.py).
Also checks that upstream still refuses what README.md says it cannot run.

Writes DIR/report.json and DIR/report.md (default tests/.cache/crossval; the committed
copy in crossval/ is made with ``--out crossval``). Exit status: 0 all within bounds,
1 some case out of bounds, 2 llama_cpp or bitnet not importable.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import engines  # noqa: E402  (crossval/, on the path above)
import make_models  # noqa: E402
import metrics  # noqa: E402
import report  # noqa: E402
from install_llama_cpp import read_pin  # noqa: E402

PROMPT_LENS = (1, 16, 100)
N_PREDICT = 32
# what covers the rows upstream cannot run (crossval/README.md, "What upstream cannot do")
COVERED_BY = {
    "b158": "ik_llama.cpp golden logits (tests/test_golden.py, b158 F32/F16/IQ2_BN/IQ1_BN) "
            "+ numpy reference (tests/test_engine_vs_reference.py)",
    "I2_S": "numpy reference with bitnet.cpp's activation quantization (tests/test_engine_vs_reference.py, "
            "I2_S rows); no bitnet.cpp golden data yet",
}


def prompts(n_vocab: int, lens: tuple[int, ...]) -> list[list[int]]:
    # ids 0..2 are <unk>, <s>, </s> in model_factory's vocabulary: left out
    return [[int(t) for t in np.random.default_rng([make_models.SEED, n]).integers(3, n_vocab, n)] for n in lens]


def run_model(mf: make_models.ModelFile, ps: list[list[int]], n_predict: int,
              settings: list[engines.Settings]) -> list[dict[str, Any]]:
    """Every prompt under each upstream setting; ours is loaded once (it has one attention path)."""
    ours = engines.Ours(mf.path, settings[0])
    out = []
    try:
        for s in settings:
            up = engines.Upstream(mf.path, s)
            try:
                for p in ps:
                    up_ids = up.greedy(p, n_predict)
                    seq = p + up_ids
                    res = metrics.compare_case(mf.format, p, up_ids, ours.greedy(p, n_predict),
                                               up.logits(seq), ours.logits(seq))
                    out.append({"model": model_label(mf), "family": mf.family, "arch": mf.arch, "format": mf.format,
                                "flash_attn": s.flash_attn, "prompt": p, **res})
                    log(f"{mf.family} {mf.format} fa={int(s.flash_attn)} P={len(p)}: min cos {res['min_cos']:.7f}, "
                        f"max|Δ| {res['max_abs']:.4f} ({res['max_rel']:.5f} std, first {res['first_rel']:.6f}), greedy "
                        f"{'identical' if res['greedy_identical'] else res['divergence']}"
                        f"{'' if res['pass'] else '  OUT OF BOUNDS'}")
            finally:
                up.close()
        return out
    finally:
        ours.close()


def model_label(mf: make_models.ModelFile) -> str:
    return f"{mf.family}-{mf.format}.gguf"


def check_unsupported(mf: make_models.ModelFile, s: engines.Settings) -> dict[str, Any]:
    err = engines.upstream_refusal(mf.path, s)
    ours = engines.Ours(mf.path, s)
    try:
        lg = ours.logits(prompts(make_models.SHAPE["n_vocab"], (8,))[0])
        our_txt = "runs (finite logits)" if np.all(np.isfinite(lg)) else "non-finite logits"
    finally:
        ours.close()
    log(f"unsupported {mf.family} {mf.format}: upstream {'REFUSES: ' + err if err else 'loads it'}; ours {our_txt}")
    return {"model": model_label(mf), "family": mf.family,
            "arch": mf.arch, "format": mf.format, "note": mf.note, "upstream_error": err, "ours": our_txt,
            "covered_by": COVERED_BY[mf.family if mf.family == "b158" else mf.format],
            "pass": err is not None and our_txt.startswith("runs")}


def log(msg: str) -> None:
    print(f"[crossval] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / ".cache" / "crossval",
                    help="where report.json and report.md go (default: tests/.cache/crossval)")
    ap.add_argument("--work-dir", type=Path, default=ROOT / "tests" / ".cache" / "crossval" / "models",
                    help="where the converted models go")
    ap.add_argument("--threads", type=int, default=2, help="threads of both engines (default 2)")
    ap.add_argument("--flash-attn", choices=("both", "on", "off"), default="both",
                    help="upstream's attention path(s) (default: both)")
    ap.add_argument("--families", default=",".join(make_models.FAMILIES))
    ap.add_argument("--formats", default=",".join(make_models.FORMATS))
    ap.add_argument("--n-predict", type=int, default=N_PREDICT)
    args = ap.parse_args(argv)
    try:
        import bitnet  # noqa: F401
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        log(f"{exc}: run crossval/install_llama_cpp.py (llama_cpp) / pip install . (bitnet) first")
        return 2
    t0 = time.time()
    # upstream's two attention paths: flash attention is llama.cpp's default on CPU (-fa auto),
    # off is llama-cpp-python's default; each rounds differently (metrics.py)
    settings = [engines.Settings(n_ctx=make_models.SHAPE["n_ctx"], n_threads=args.threads, flash_attn=fa)
                for fa in ((True, False) if args.flash_attn == "both" else (args.flash_attn == "on",))]
    s = settings[0]
    models = make_models.make(args.work_dir, tuple(args.families.split(",")), tuple(args.formats.split(",")))
    ps = prompts(make_models.SHAPE["n_vocab"], PROMPT_LENS)
    cases = [c for mf in models for c in run_model(mf, ps, args.n_predict, settings)]
    unsupported = [check_unsupported(mf, s) for mf in make_models.make_unsupported(args.work_dir)]
    summary = report.summarize(cases)
    pkg, version, sha = read_pin()
    data = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python crossval/run_crossval.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seconds": round(time.time() - t0, 1),
        "upstream": {**engines.upstream_info(), "pin": f"{pkg}=={version}", "sdist_sha256": sha},
        "ours": engines.ours_info(models[0].path),
        "settings": {"n_ctx": s.n_ctx, "n_threads": s.n_threads, "flash_attn": [x.flash_attn for x in settings],
                     "kv_cache": "f16",
                     "prompt_lens": list(PROMPT_LENS), "n_predict": args.n_predict, "shape": make_models.SHAPE,
                     "seed": make_models.SEED, "cpu_count": os.cpu_count()},
        "thresholds": metrics.THRESHOLDS,
        "summary": summary,
        "cases": cases,
        "unsupported": unsupported,
    }
    data["pass"] = all(c["pass"] for c in cases) and all(u["pass"] for u in unsupported)
    js, md = report.write(args.out, data)
    log(f"wrote {js} and {md}: {'all pass' if data['pass'] else 'FAILURES'}")
    print(report.markdown(data))
    return 0 if data["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
