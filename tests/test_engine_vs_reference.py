"""Engine vs the independent numpy reference on tiny random models of every family x format.

Models come from reference/model_factory.py (n_embd 256, n_ff 512, 2 layers, 4 heads,
2 KV heads, vocab 512, ctx 256; cached in tests/.cache/models). Prompt: 16 fixed ids.

Bounds (derivation in reference/checks.py):
- float formats: per-row cosine >= 0.9999 and max|Δ| <= 0.01 * std vs the plain float64
  reference; greedy generation identical (up to a reference near-tie < 0.05).
- quantized formats (ternary weights, Q8_0/Q4_K/Q6_K embeddings/output): vs the reference
  that quantizes every matmul input the way the format's reference implementation does:
  per-row cosine >= 0.998 and max|Δ| <= 0.30 * std. int8 rounding flips where float32 and
  float64 disagree move an activation by one step and cascade; a float32 emulating
  reference stays within 0.9994 / 0.10 * std, while SiLU<->relu^2 or NEOX<->NORM rope
  bugs give cosine <= 0.92 and max|Δ| >= 1.4 * std (checked in test_reference_vs_golden.py).
"""
import numpy as np
import pytest

from reference import checks, model_factory as MF

bitnet = pytest.importorskip("bitnet", reason="the bitnet engine package is not importable (not built yet?)")

PROMPT = [int(t) for t in np.random.default_rng(7).integers(3, 512, 16)]
TERNARY_FAMILIES = ("b158", "b25", "bitnet", "tern-llama")
WEIGHT_TYPES = ("F32", "F16", "BF16", "I2_S", "TQ1_0", "TQ2_0", "IQ1_BN", "IQ2_BN")

COMBOS = [(fam, wt, "F32" if wt == "F32" else ("BF16" if wt == "BF16" else "F16"), None)
          for fam in TERNARY_FAMILIES for wt in WEIGHT_TYPES]
COMBOS += [("llama", wt, wt, None) for wt in ("F32", "F16", "BF16")]
COMBOS += [("llama", "Q8_0", "Q8_0", None), ("llama", "F16", "Q6_K", "Q4_K")]
# quantized embeddings / outputs as converters write them
COMBOS += [("b158", "TQ2_0", "Q6_K", None), ("bitnet", "TQ1_0", "Q6_K", None),
           ("tern-llama", "TQ2_0", "Q4_K", "Q6_K"), ("tern-llama", "TQ1_0", "Q4_K", "Q6_K"),
           ("b158", "I2_S", "Q8_0", None), ("tern-llama", "IQ2_BN", "F16", "Q8_0"),
           ("b25", "IQ1_BN", "Q6_K", None)]


def _id(c):
    return "-".join(x for x in c if x)


@pytest.fixture(scope="module")
def models():
    opened = []

    def load(path, **kw):
        m = bitnet.Model(str(path), **kw)
        opened.append(m)
        return m

    yield load
    for m in opened:
        m.close()


@pytest.mark.parametrize("combo", COMBOS, ids=[_id(c) for c in COMBOS])
def test_logits_match_reference(combo, models, ref_cache):
    fam, wt, emb, out = combo
    path = MF.make_model(fam, wt, emb, out)
    m = models(path)
    assert m.arch == MF.ARCH[fam]
    assert m.n_vocab == MF.DEFAULT_SHAPE["n_vocab"]
    got = m.logits(PROMPT)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert got.shape == (len(PROMPT), m.n_vocab)
    b = checks.bound_for(wt, emb if out is None else (emb if out in checks.FLOAT_TYPES else out))
    if out is not None and out not in checks.FLOAT_TYPES:
        b = checks.QUANT_BOUND
    ref = ref_cache(path).logits(PROMPT, emulate_act=b is checks.QUANT_BOUND)
    ok, msg = checks.compare(got, ref, **b)
    assert ok, msg


FLOAT_COMBOS = [c for c in COMBOS if checks.bound_for(c[1], c[2]) is checks.FLOAT_BOUND and c[3] is None]


@pytest.mark.parametrize("combo", FLOAT_COMBOS, ids=[_id(c) for c in FLOAT_COMBOS])
def test_greedy_matches_reference(combo, models, ref_cache):
    fam, wt, emb, out = combo
    path = MF.make_model(fam, wt, emb, out)
    m = models(path)
    n = 16
    ref_ids, gaps = ref_cache(path).greedy(PROMPT, n, return_gaps=True)
    got = m.generate_tokens(PROMPT, n, temperature=0.0, ignore_eos=True)
    upto = next((i for i, g in enumerate(gaps) if g < 0.05), n)
    assert got[:upto] == ref_ids[:upto]


def test_logits_prefix_consistency(models):
    """Teacher-forced logits of a prefix equal the first rows of the full sequence."""
    path = MF.make_model("b158", "F32", "F32")
    m = models(path)
    full = m.logits(PROMPT)
    part = m.logits(PROMPT[:5])
    np.testing.assert_allclose(part, full[:5], rtol=1e-4, atol=1e-4 * np.abs(full).max())


def test_errors():
    with pytest.raises((FileNotFoundError, bitnet.BitNetError)):
        bitnet.Model("/nonexistent/model.gguf")
    assert issubclass(bitnet.BitNetError, RuntimeError)
