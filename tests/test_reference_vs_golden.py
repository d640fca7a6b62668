"""Checks of the independent numpy reference itself (no engine needed).

1. formats: encoders/decoders round-trip ternary data exactly, agree with the PyPI gguf
   package where it has the type, and every golden model file (ik_llama.cpp F16/IQ2_BN/
   IQ1_BN, upstream TQ1_0/TQ2_0) is rebuilt byte for byte (sha256) with our encoders;
   decoded golden tensors equal the F32 model's values.
2. act_quant: small hand-made cases of each activation quantizer.
3. forward: float64 reference vs the F32 goldens of ik_llama.cpp and upstream llama.cpp
   (greedy ids identical; teacher-forced logits within the documented tolerances), and
   the emulating reference vs the quantized goldens at the first position, where the
   references are deterministic (no attention mixing): equal to 1e-3.
4. the engine-vs-reference bound (reference/checks.py) accepts a float32 emulating
   reference and rejects deliberately broken references.
"""
import numpy as np
import pytest

from reference import act_quant as AQ, checks, formats as F, golden, gguf_io, model_factory as MF
from reference.forward import ReferenceModel

TERNARY = ["TQ1_0", "TQ2_0", "I2_S", "IQ1_BN", "IQ2_BN"]


# ---------------------------------------------------------------------------------------
# 1. formats
@pytest.mark.parametrize("t", TERNARY)
def test_ternary_roundtrip(t):
    rng = np.random.default_rng(1)
    s = float(F.f16r(0.0123))
    w = rng.integers(-1, 2, size=(6, 768)).astype(np.float64) * s
    data = F.encode(t, w)
    assert len(data) == F.nbytes(t, (768, 6))
    assert np.array_equal(F.decode(t, data, (768, 6)), w)


@pytest.mark.parametrize("t", ["Q8_0", "BF16", "TQ1_0", "TQ2_0"])
def test_encoders_match_gguf_package(t):
    gq = pytest.importorskip("gguf.quants")
    from gguf import GGMLQuantizationType as GT
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 512)).astype(np.float32)
    if t.startswith("TQ"):
        x = (rng.integers(-1, 2, size=x.shape) * np.float32(0.02)).astype(np.float32)
    theirs = gq.quantize(x, GT[t]).tobytes()
    assert F.encode(t, x) == theirs
    ref = gq.dequantize(np.frombuffer(theirs, np.uint8).reshape(4, -1), GT[t]).astype(np.float64)
    assert np.array_equal(F.decode(t, theirs, (512, 4)), ref)


@pytest.mark.parametrize("t", ["Q4_K", "Q6_K", "Q8_0"])
def test_kquant_encoders_valid(t):
    gq = pytest.importorskip("gguf.quants")
    from gguf import GGMLQuantizationType as GT
    x = np.random.default_rng(3).standard_normal((4, 512))
    data = F.encode(t, x)
    mine = F.decode(t, data, (512, 4))
    theirs = gq.dequantize(np.frombuffer(data, np.uint8).reshape(4, -1), GT[t]).astype(np.float64)
    assert np.array_equal(mine, theirs)
    tol = {"Q4_K": 0.08, "Q6_K": 0.02, "Q8_0": 0.005}[t]
    assert np.abs(mine - x).max() <= tol * np.abs(x).max()


@pytest.mark.parametrize("name", sorted(golden.models()))
def test_golden_model_rebuilt_and_decoded(name):
    """Rebuilt byte for byte (sha256 checked in model_path); every tensor whose bytes our
    encoders reproduce decodes to exactly the F32 model's values."""
    meta = golden.models()[name]
    g = gguf_io.read(golden.model_path(name))
    assert gguf_io.read(g.to_bytes()).to_bytes() == g.to_bytes()
    if meta["recipe"] != "skeleton":
        return
    src = gguf_io.read(golden.model_path(meta["source"]))
    kinds = set()
    for t in g.tensors:
        if t.name in meta["derived_tensors"]:
            assert np.array_equal(g.array(t.name), src.array(t.name)), t.name
            kinds.add(F.NAMES[t.type])
        else:                                  # upstream's own K-quant choice: close only
            a, b = g.array(t.name), src.array(t.name)
            assert np.sqrt(np.mean((a - b) ** 2)) < 0.1 * b.std(), t.name
    fmt = name.split("-A-")[1].split("-")[0].split(".")[0].upper()
    assert fmt in kinds


# ---------------------------------------------------------------------------------------
# 2. act_quant
def test_q8_k_sign_keeping_max():
    x = np.zeros((1, 256))
    x[0, :4] = [-127 / 64, 2.5 / 64, 1.5 / 64, 127 / 64 * 0.999]   # max keeps its sign: -127/64
    v = AQ.q8_k(x)                                                  # iscale = -127/max = 64
    assert v[0, 0] == -127 / 64
    assert v[0, 1] == 2 / 64              # 2.5 -> 2: round half to even
    assert v[0, 2] == 2 / 64              # 1.5 -> 2
    assert v[0, 3] == 127 / 64            # 126.87 -> 127 (min(127, .))
    y = np.zeros((1, 256))
    y[0, :2] = [1.0, -1.0]                # tie on |x|: the first one is the max (+1)
    w = AQ.q8_k(y)                        # iscale = -127: -1 -> +127 fine, +1 -> -127
    assert w[0, 0] == pytest.approx(1.0, rel=1e-7) and w[0, 1] == pytest.approx(-1.0, rel=1e-7)  # d = 1/iscale in float32


def test_q8_0_and_i8_row_and_k64():
    x = np.linspace(-1, 1, 64)[None]
    q = AQ.q8_0(x)
    assert np.abs(q - x).max() <= 0.5 / 127 * 1.01
    r = AQ.i8_row(x * 3)
    assert np.abs(r - 3 * x).max() <= 0.5 * 3 / 127 * 1.0001
    y = np.zeros((1, 32))
    y[0, 0], y[0, 4] = 1.0, 100.0       # groups 0 and 1 get separate scales
    z = AQ.q8_k64(y + 0.003)
    assert z[0, 0] == pytest.approx(1.003, abs=1.003 / 254 * 1.01)


# ---------------------------------------------------------------------------------------
# 3. forward pass vs goldens
F32_CASES = [c for c in golden.cases() if c["format"] in ("F32",)]


@pytest.mark.parametrize("case", F32_CASES, ids=[c["id"] for c in F32_CASES])
def test_reference_f32_matches_golden(case, ref_cache):
    ref = ref_cache(golden.model_path(case["model"]))
    assert ref.greedy(case["prompt_ids"], len(case["greedy_ids"])) == case["greedy_ids"]
    last = golden.last_logits(case)
    got = ref.logits(case["prompt_ids"])[-1]
    # README: references agree with each other to max|Δ| <= 0.39, cosine >= 0.999995
    assert np.abs(got - last).max() <= 0.4
    assert checks.row_cosines(got, last) >= 0.99999
    tf = golden.tf_logits(case)
    if tf is not None:
        lg = ref.logits(case["tf_ids"])
        d = np.abs(lg - tf)
        if case["source"] == "ik":
            # np_ref vs ik F32 (README): max 0.069-0.185, mean 0.011-0.021 over all positions
            assert d.max() <= 0.25 and d.mean() <= 0.03
            # K/V rounded to float16 like ik's cache: 0.027-0.034 documented
            d16 = np.abs(ref.logits(case["tf_ids"], kv_f16="ik") - tf)
            assert d16.max() <= 0.06 and d16.mean() <= 0.006
        else:
            assert d.max() <= 0.4 and d.mean() <= 0.06
        assert checks.row_cosines(lg, tf).min() >= 0.99999


FIRST_POS = [c for c in golden.cases() if c["format"] in ("IQ2_BN", "TQ2_0") and len(c["prompt_ids"]) == 1]


@pytest.mark.parametrize("case", FIRST_POS, ids=[c["id"] for c in FIRST_POS])
def test_emulating_reference_first_position(case, ref_cache):
    """At a 1-token prompt attention is the identity on V, so the only rounding outside the
    integer dot products is the float16 V cache: the emulating reference must then
    reproduce the quantized golden (activation quantization and weight decoding exact)."""
    ref = ref_cache(golden.model_path(case["model"]))
    kv = "ik" if case["source"] == "ik" else "upstream"
    got = ref.logits(case["prompt_ids"], emulate_act=True, kv_f16=kv)[-1]
    last = golden.last_logits(case)
    plain = ref.logits(case["prompt_ids"])[-1]
    assert np.abs(plain - last).max() > 1.0          # quantization visibly matters here ...
    assert np.abs(got - last).max() < 1e-3           # ... and the emulation is exact


QUANT_CASES = [c for c in golden.cases() if c["format"] not in ("F32", "F16")]


@pytest.mark.parametrize("case", QUANT_CASES, ids=[c["id"] for c in QUANT_CASES])
def test_emulating_reference_quantized_golden(case, ref_cache):
    """Whole cases: within the bounds test_golden.py uses for the engine (measured here:
    cosine >= 0.99942, max|Δ| <= 4.4, golden token within 2.8 of the top logit)."""
    BOUNDS = checks.GOLDEN_BOUNDS
    ref = ref_cache(golden.model_path(case["model"]))
    kv = "ik" if case["source"] == "ik" else "upstream"
    tf_ids = case["prompt_ids"] + case["greedy_ids"]
    lg = ref.logits(tf_ids, emulate_act=True, kv_f16=kv)
    b = BOUNDS[case["format"]]
    P = len(case["prompt_ids"])
    last = golden.last_logits(case)
    assert checks.row_cosines(lg[P - 1], last) >= b["min_cos"]
    assert np.abs(lg[P - 1] - last).max() <= b["max_abs"]
    steps = lg[P - 1:P - 1 + len(case["greedy_ids"])]
    deficit = steps.max(1) - steps[np.arange(len(steps)), case["greedy_ids"]]
    assert deficit.max() <= b["near_tie"]


# ---------------------------------------------------------------------------------------
# 4. the engine-vs-reference bound is tight enough to catch real bugs
PROMPT = [int(t) for t in np.random.default_rng(7).integers(3, 512, 16)]
SENS = [("b158", "TQ2_0", "Q4_K"), ("b25", "IQ1_BN", "F16"), ("bitnet", "I2_S", "F16"),
        ("tern-llama", "TQ1_0", "Q6_K"), ("b158", "F32", "F32"), ("llama", "F16", "F16"),
        ("bitnet", "TQ1_0", "Q6_K")]


@pytest.mark.parametrize("fam,wt,emb", SENS)
def test_bound_accepts_float32_reference_and_rejects_bugs(fam, wt, emb):
    path = MF.make_model(fam, wt, emb)
    b = checks.bound_for(wt, emb)
    em = b is checks.QUANT_BOUND
    good = ReferenceModel(path).logits(PROMPT, emulate_act=em)
    f32 = ReferenceModel(path, dtype=np.float32).logits(PROMPT, emulate_act=em)
    ok, msg = checks.compare(f32, good, **b)
    assert ok, "float32 reference rejected: " + msg
    relu = fam in ("b158", "b25")
    for ov in ({"ffn_act": "silu" if relu else "relu2"},
               {"rope": "neox" if fam in ("llama", "tern-llama") else "norm"},
               {"sub_norms": False} if fam in ("b158", "b25", "bitnet") else {"ignore_scale": True}):
        bad = ReferenceModel(path, overrides=ov).logits(PROMPT, emulate_act=em)
        if "ignore_scale" in ov and fam != "bitnet":
            continue
        ok, msg = checks.compare(bad, good, **b)
        assert not ok, f"broken reference {ov} accepted: {msg}"
