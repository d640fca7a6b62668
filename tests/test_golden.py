"""Engine vs golden data of other implementations (tests/data/golden, see its README).

For every case (ik_llama.cpp: b158 / bitnet / tern-llama in F32, F16, IQ2_BN, IQ1_BN;
upstream llama.cpp: bitnet / tern-llama in F32, TQ1_0, TQ2_0):

- last-prompt-position logits: cosine >= BOUNDS[fmt]["min_cos"], max|Δ| <= BOUNDS[fmt]["max_abs"];
- greedy ids: F32/F16 identical to the golden (where a step's golden top1-top2 gap is
  below 0.05, only up to that step). Quantized formats: identical up to the first step
  where the engine's own teacher-forced logits show a near-tie, i.e. the golden token is
  within ``near_tie`` of the top logit; and at *every* one of the 32 steps of the
  teacher-forced golden sequence the golden token must be within ``near_tie`` of the top.

Bounds (logit std is ~34 in every case):
- F32/F16: max|Δ| 0.5, cosine 0.99999. Documented: ik vs upstream F32 max 0.39, cosine
  >= 0.999995; our float64 reference vs ik 0.07-0.19 (f16 KV cache in ik).
- IQ2_BN/IQ1_BN, TQ1_0/TQ2_0 (int8 activations): max|Δ| 6.0, cosine 0.999,
  near_tie 4.0. Documented: activation rounding is chaotic; an independent implementation
  should expect 0.5-5 of logit difference (ik README). Measured with our emulating
  reference (exact to 3e-5 at the first position): worst last-position cosine 0.99942,
  max|Δ| 4.4, golden token at most 2.8 below the top logit (tern-llama TQ, 12 tokens).
"""
import numpy as np
import pytest

from reference import checks, golden

bitnet = pytest.importorskip("bitnet", reason="the bitnet engine package is not importable (not built yet?)")

FLOAT = checks.GOLDEN_FLOAT
QUANT = checks.GOLDEN_QUANT
BOUNDS = checks.GOLDEN_BOUNDS

CASES = golden.cases()


@pytest.fixture(scope="module")
def engine_models():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = bitnet.Model(str(golden.model_path(name)), n_ctx=512)
        return cache[name]

    yield get
    for m in cache.values():
        m.close()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_golden_case(case, engine_models):
    m = engine_models(case["model"])
    b = BOUNDS[case["format"]]
    P = len(case["prompt_ids"])
    gold_ids = case["greedy_ids"]
    n = len(gold_ids)

    # last-position logits
    last = golden.last_logits(case)
    got = m.logits(case["prompt_ids"])
    assert got.shape == (P, len(last)) and got.dtype == np.float32
    cos = checks.row_cosines(got[-1], last)
    dmax = float(np.abs(got[-1].astype(np.float64) - last).max())
    assert cos >= b["min_cos"] and dmax <= b["max_abs"], \
        f"last logits: cosine {cos:.6f} (>= {b['min_cos']}), max|Δ| {dmax:.3f} (<= {b['max_abs']})"

    # teacher-forced golden sequence: the golden token is (near) the top at every step
    tf = m.logits(case["prompt_ids"] + gold_ids).astype(np.float64)
    steps = tf[P - 1:P - 1 + n]
    deficit = steps.max(1) - steps[np.arange(n), gold_ids]
    assert deficit.max() <= b["near_tie"], \
        f"golden token {deficit.max():.3f} below the engine's top logit at step {int(deficit.argmax())}"
    tf_gold = golden.tf_logits(case)
    if tf_gold is not None:
        c = checks.row_cosines(tf, tf_gold).min()
        assert c >= b["min_cos"] - (0.0 if b is FLOAT else 0.0005), f"teacher-forced min cosine {c:.6f}"

    # free-running greedy generation
    gen = m.generate_tokens(case["prompt_ids"], n, temperature=0.0, ignore_eos=True)
    assert len(gen) == n
    if b is FLOAT:
        gaps = case.get("gaps") or [case["min_top_gap"]] * n
        upto = next((i for i, g in enumerate(gaps) if g < 0.05), n)
        if case["min_top_gap"] < 0.05 and case.get("gaps") is None:
            upto = checks.greedy_prefix(gen, gold_ids)  # no per-step gaps: accept any prefix
        assert gen[:upto] == gold_ids[:upto]
    else:
        k = checks.greedy_prefix(gen, gold_ids)
        if k < n:
            # first divergence: allowed only where the engine's own logits are near-tied
            srt = np.sort(steps[k])
            assert srt[-1] - srt[-2] <= b["near_tie"] or deficit[k] <= b["near_tie"], \
                f"greedy diverges at step {k} without a near-tie"
