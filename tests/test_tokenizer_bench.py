"""Tokenize throughput of the C tokenizer and of Hugging Face ``tokenizers``
(single thread) on the same text, in one run, with the LLaMA-3 vocabulary.

    python tests/test_tokenizer_bench.py        # prints the numbers
    BITNET_BENCH=1 pytest tests/test_tokenizer_bench.py -s   # same, and checks ours >= HF

A benchmark, not a unit test: the default test run skips it.

The text is the multilingual corpus of test_tokenizer.py (>= 1 MB of files on
this machine). Both tokenizers get it as one string and as a list of lines;
the ids are checked to be identical. HF runs on one thread
(RAYON_NUM_THREADS=1, encode_batch with parallelism off).
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_tokenizer as T  # noqa: E402


def _best(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run() -> dict[str, float]:
    hf = T.hf_llama3()
    t0 = time.perf_counter()
    tok = T.Tokenizer(T.BPE)
    load_ms = (time.perf_counter() - t0) * 1e3
    docs = T._corpus_texts()
    text = "\n".join(docs)
    lines = text.split("\n")
    nbytes = len(text.encode("utf-8"))

    t_ours, ids_ours = _best(lambda: tok.tokenize(text))
    t_hf, enc = _best(lambda: hf.encode(text, add_special_tokens=False))
    assert ids_ours == enc.ids, "whole-text ids differ"
    t_ours_l, lo = _best(lambda: [tok.tokenize(x) for x in lines])
    t_hf_l, le = _best(lambda: [e.ids for e in hf.encode_batch(lines, add_special_tokens=False)])
    assert lo == le, "per-line ids differ"
    tok.close()
    r = {
        "bytes": nbytes,
        "tokens": len(ids_ours),
        "load_ms": load_ms,
        "ours_mb_s": nbytes / t_ours / 1e6,
        "hf_mb_s": nbytes / t_hf / 1e6,
        "ours_lines_mb_s": nbytes / t_ours_l / 1e6,
        "hf_lines_mb_s": nbytes / t_hf_l / 1e6,
    }
    print(
        f"\ntokenizer benchmark, LLaMA-3 vocabulary, {nbytes / 1e6:.2f} MB, {len(ids_ours)} tokens, {len(lines)} lines\n"
        f"  load (128256 tokens, 280147 merges): {load_ms:.0f} ms\n"
        f"  one string : ours {r['ours_mb_s']:7.2f} MB/s   HF {r['hf_mb_s']:7.2f} MB/s   "
        f"ratio {r['ours_mb_s'] / r['hf_mb_s']:.1f}x\n"
        f"  line by line: ours {r['ours_lines_mb_s']:7.2f} MB/s   HF {r['hf_lines_mb_s']:7.2f} MB/s   "
        f"ratio {r['ours_lines_mb_s'] / r['hf_lines_mb_s']:.1f}x"
    )
    return r


def test_throughput():
    if not os.environ.get("BITNET_BENCH"):
        pytest.skip("benchmark: run with BITNET_BENCH=1 (or python tests/test_tokenizer_bench.py)")
    pytest.importorskip("tokenizers")
    docs = T._corpus_texts()
    if sum(len(d.encode("utf-8")) for d in docs) < 1_000_000:
        pytest.skip("less than 1 MB of text on this machine")
    r = run()
    assert r["ours_mb_s"] >= r["hf_mb_s"]
    assert r["load_ms"] < 1000


if __name__ == "__main__":
    run()
